"""Freezing a follow-up run: one delivery per recipient the step before sent to, in one
transaction, chunk by chunk.

The recipients are the previous run's `sent` deliveries; those whose thread was replied to,
bounced or complained about, or whose address is suppressed, are frozen `skipped` with the
reason (the ledger says why each one got no follow-up); the others are pending unless the
step's template does not render for them (skipped, or the run fails under `abort`). Each keeps
its previous delivery (threading, engine), its step and the same variables. No DNS step: the
step before checked the domains a few days ago.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks
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
    try:
        return _freeze(ws, run, unsubscribe, now)
    except _Aborted as aborted:
        with ws.db.begin() as conn:
            run_progress.fail_initializing(conn, run.id, reason=str(aborted), now=now)
        return False


class _Aborted(Exception):
    """Rows do not render under `abort`: the run fails with this reason, nothing frozen."""


def _freeze(ws: Workspace, run: Run, unsubscribe: UnsubscribeLinks | None, now: datetime) -> bool:
    with ws.db.begin() as conn:
        run_progress.lock_for_freeze(conn, run.id)
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

        abort = run.options.on_render_error is RenderErrorPolicy.ABORT
        failing = _RenderFailures()
        # chunk by chunk (`iter_previous`): decided, checked against the suppression list and
        # written, so memory does not grow with the step before's recipients
        for chunk in follow_ups.iter_previous(conn, run.previous_run_id or 0):
            keys = [p.email_normalized for p in chunk if p.email_normalized]
            suppressed = suppressions.suppressed_among(conn, keys)
            plan = list(
                plan_follow_ups(
                    (candidate_of(p) for p in chunk), suppressed=suppressed, render=render
                )
            )
            failing.note(plan)
            if abort and failing.count:  # read on only to count the rows that do not render
                continue
            deliveries.insert_deliveries(conn, (_delivery_row(run, p, now) for p in plan))
        if abort and failing.count:
            # leaving the block by an error rolls every chunk written back: nothing is frozen
            raise _Aborted(failing.reason())
        run_progress.freeze_plan(conn, run.id, (), now=now)
    return True


def _delivery_row(run: Run, p: PlannedFollowUp, now: datetime) -> dict[str, Any]:
    return {
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


class _RenderFailures:
    """The follow-ups whose template does not render, counted chunk by chunk; the first 20
    kept for the reason the run fails with under `abort`."""

    def __init__(self) -> None:
        self.count = 0
        self._shown: list[str] = []

    def note(self, plan: list[PlannedFollowUp]) -> None:
        for p in plan:
            if p.status is DeliveryStatus.SKIPPED and (p.reason or "").startswith(
                SkipReason.RENDER_ERROR
            ):
                self.count += 1
                if len(self._shown) < 20:
                    self._shown.append(f"row {p.candidate.row_number}: {p.reason}")

    def reason(self) -> str:
        shown = "; ".join(self._shown)
        return f"{RENDER_ABORT_PREFIX}: {self.count} rows do not render, nothing was sent: {shown}"
