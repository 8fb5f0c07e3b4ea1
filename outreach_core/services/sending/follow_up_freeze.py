"""Freezing a follow-up run: one delivery per recipient the step before sent to, in one
transaction.

The recipients are the previous run's `sent` deliveries; those whose thread was replied to,
bounced or complained about, or whose address is suppressed, are frozen `skipped` with the
reason (the ledger says why each one got no follow-up); the others are pending unless the
step's template does not render for them (skipped, or the run fails under `abort`). Each keeps
its previous delivery (threading, engine), its step and the same variables. No DNS step: the
step before checked the domains a few days ago.
"""

from __future__ import annotations

from outreach_core.adapters.store import (
    deliveries,
    engines,
    follow_ups,
    run_progress,
    suppressions,
    templates,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import RenderErrorPolicy, Run
from outreach_core.domain.planning import RENDER_ABORT_PREFIX, SenderIdentity, render_context
from outreach_core.domain.states import DeliveryStatus, SkipReason
from outreach_core.domain.steps import FollowUpCandidate, PlannedFollowUp, plan_follow_ups
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.errors import ConfigError, TemplateError
from outreach_core.services.follow_ups import candidate_of
from outreach_core.services.sending.context import unsubscribe_links


def freeze_follow_up(ws: Workspace, run: Run, *, clock: Clock = utcnow) -> bool:
    """INITIALIZING -> SENDING for a follow-up run (`run.step` > 1); False (the run failed
    with the reason) when its template does not compile or rows do not render under abort."""
    now = clock()
    try:
        unsubscribe = unsubscribe_links(ws, run.options)
    except ConfigError as exc:
        with ws.db.begin() as conn:
            run_progress.fail_initializing(conn, run.id, reason=str(exc), now=now)
        return False
    with ws.db.begin() as conn:
        if deliveries.has_deliveries(conn, run.id):  # frozen before a crash in this state
            run_progress.freeze_plan(conn, run.id, (), now=now)
            return True
        version = templates.get_version(conn, run.template_version_id or 0)
        engine = engines.get_engine(conn, run.engine_id or 0)
        try:
            template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
        except TemplateError as exc:
            reason = f"template {version.name} v{version.version}: {exc}"
            run_progress.fail_initializing(conn, run.id, reason=reason, now=now)
            return False
        sender = SenderIdentity(engine.from_email, engine.from_name)

        def render(candidate: FollowUpCandidate) -> object:
            return template.render(
                render_context(
                    candidate.variables,
                    email=candidate.email,
                    sender=sender,
                    run_date=run.created_at,
                    unsubscribe=unsubscribe,
                )
            )

        plan: list[PlannedFollowUp] = []
        for chunk in follow_ups.iter_previous(conn, run.previous_run_id or 0):
            keys = [p.email_normalized for p in chunk if p.email_normalized]
            suppressed = suppressions.suppressed_among(conn, keys)
            plan += plan_follow_ups(
                (candidate_of(p) for p in chunk), suppressed=suppressed, render=render
            )
        abort = _abort_reason(plan, run.options.on_render_error)
        if abort:
            run_progress.fail_initializing(conn, run.id, reason=abort, now=now)
            return False
        run_progress.freeze_plan(
            conn,
            run.id,
            (
                {
                    "run_id": run.id,
                    "row_number": p.candidate.row_number,
                    "email": p.candidate.email,
                    "email_normalized": p.candidate.key,
                    "variables": p.candidate.variables,
                    "status": p.status,
                    "reason": p.reason,
                    "attempts": 0,
                    "engine_id": None,
                    "updated_at": now,
                    "step": run.step,
                    "previous_delivery_id": p.candidate.previous_delivery_id,
                }
                for p in plan
            ),
            now=now,
        )
    return True


def _abort_reason(plan: list[PlannedFollowUp], policy: RenderErrorPolicy) -> str | None:
    """Why the run must send nothing under `abort`: the rows its template does not render."""
    if policy is not RenderErrorPolicy.ABORT:
        return None
    failing = [
        p
        for p in plan
        if p.status is DeliveryStatus.SKIPPED
        and (p.reason or "").startswith(SkipReason.RENDER_ERROR)
    ]
    if not failing:
        return None
    shown = "; ".join(f"row {p.candidate.row_number}: {p.reason}" for p in failing[:20])
    return f"{RENDER_ABORT_PREFIX}: {len(failing)} rows do not render, nothing was sent: {shown}"
