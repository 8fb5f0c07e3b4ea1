"""Freezing a run's audience: one delivery row per audience row, written in one transaction.

Before the freeze, the DNS step of the pre-flight gives each recipient domain its verdict,
and a SQL audience is queried afresh for the run (`audience_query`). After it the run is
SENDING, or FAILED with the reason nothing could be frozen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outreach_core.adapters.store import (
    audiences,
    deliveries,
    engines,
    run_progress,
    suppressions,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Run
from outreach_core.domain.mx import DomainResult
from outreach_core.domain.planning import (
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
    render_abort_reason,
)
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.errors import ConfigError, InputError, TemplateError
from outreach_core.services import preflight
from outreach_core.services.sending import audience_query
from outreach_core.services.sending.context import unsubscribe_links
from outreach_core.services.sending.follow_up_freeze import freeze_follow_up


def freeze_audience(
    ws: Workspace,
    run: Run,
    *,
    domains: Mapping[str, DomainResult] | None = None,
    clock: Clock = utcnow,
) -> bool:
    """INITIALIZING -> SENDING: one delivery row per audience row, all in one transaction.

    `domains` (the pre-flight's DNS verdicts; None when the run skips MX checks) skips rows
    whose domain cannot receive mail. Returns False (and fails the run) when the template
    cannot compile, or when rows do not render and the run's `on_render_error` is abort
    (then no delivery row is written).
    """
    if run.step > 1:  # a follow-up: the recipients of the step before, not the audience
        return freeze_follow_up(ws, run, clock=clock)
    now = clock()
    try:
        queried = _queried_rows(ws, run)
        unsubscribe = unsubscribe_links(ws, run.options)
    except (InputError, ConfigError) as exc:
        # the audience query failed, or a stored secret (the SQL source's URL, the signing
        # key) opens with no key: the run fails saying why, nothing is frozen, none holds it
        reason = f"audience query failed: {exc}" if isinstance(exc, InputError) else str(exc)
        with ws.db.begin() as conn:
            run_progress.fail_initializing(conn, run.id, reason=reason, now=now)
        return False
    with ws.db.begin() as conn:
        if deliveries.has_deliveries(conn, run.id):  # frozen before a crash in this state
            run_progress.freeze_plan(conn, run.id, (), now=now)
            return True
        workflow = workflows.get_workflow(conn, run.workflow_id)
        audience = audiences.get_audience(conn, workflow.audience_id)
        version = templates.get_version(conn, run.template_version_id or 0)
        engine = engines.get_engine(conn, run.engine_id or 0)
        try:
            template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
        except TemplateError as exc:
            reason = f"template {version.name} v{version.version}: {exc}"
            run_progress.fail_initializing(conn, run.id, reason=reason, now=now)
            return False
        plan = list(
            plan_deliveries(
                audiences.iter_rows(conn, audience.id) if queried is None else queried,
                email_column=audience.email_column,
                template=template,
                sender=SenderIdentity(engine.from_email, engine.from_name),
                run_date=run.created_at,
                domains=domains,
                unsubscribe=unsubscribe,
                test_environment=ws.settings.test_environment,
            )
        )
        abort = render_abort_reason(plan, run.options.on_render_error)
        if abort:
            run_progress.fail_initializing(conn, run.id, reason=abort, now=now)
            return False
        pending_keys = [p.key for p in plan if p.status is DeliveryStatus.PENDING and p.key]
        plan = mark_suppressed(plan, suppressions.suppressed_among(conn, pending_keys))
        run_progress.freeze_plan(
            conn,
            run.id,
            (
                {
                    "run_id": run.id,
                    "row_number": p.row_number,
                    "email": p.email,
                    "email_normalized": p.key,
                    "variables": p.variables,
                    "status": p.status,
                    "reason": p.reason,
                    "attempts": 0,
                    # set when an engine takes the delivery (rotation picks it per send)
                    "engine_id": None,
                    "updated_at": now,
                }
                for p in plan
            ),
            now=now,
        )
    return True


def _queried_rows(ws: Workspace, run: Run) -> list[tuple[int, dict[str, Any]]] | None:
    """A SQL audience's rows queried for this run (None: stored rows, or already frozen)."""
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
    return audience_query.query_rows(ws, run)


async def domain_verdicts(ws: Workspace, run: Run) -> dict[str, DomainResult] | None:
    """The DNS step of the pre-flight, before freezing; None when skipped or already frozen."""
    if run.options.skip_mx or run.step > 1:  # a follow-up's domains were checked by step 1
        return None
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
    return await preflight.audience_domain_verdicts(ws, audience_id)
