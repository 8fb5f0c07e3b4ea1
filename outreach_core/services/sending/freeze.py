"""Freezing a run's audience: one delivery row per audience row, written in chunks in one
transaction.

Before the freeze, the DNS step of the pre-flight gives each recipient domain its verdict,
and a SQL audience is queried afresh for the run (`audience_query`). After it the run is
SENDING, or FAILED with the reason nothing could be frozen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from outreach_core.adapters.first_rows_on_disk import FirstRowsOnDisk
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
from outreach_core.domain.models import RenderErrorPolicy, Run
from outreach_core.domain.mx import DomainResult
from outreach_core.domain.planning import (
    FirstRows,
    PlannedDelivery,
    RenderFailures,
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
)
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks
from outreach_core.errors import ConfigError, InputError, TemplateError
from outreach_core.services.sending import audience_query, freeze_domains
from outreach_core.services.sending.context import unsubscribe_links
from outreach_core.services.sending.follow_up_freeze import freeze_follow_up
from outreach_core.services.sending.freeze_heartbeat import FreezeHeartbeat, RunLost

T = TypeVar("T")

#: plan rows decided, checked against the suppression list and written per chunk
FREEZE_CHUNK = 2_000


class _Refused(Exception):
    """Nothing may be frozen: the run fails with this reason (the chunks written roll back)."""


def freeze_audience(
    ws: Workspace,
    run: Run,
    *,
    domains: Mapping[str, DomainResult] | None = None,
    clock: Clock = utcnow,
) -> bool:
    """INITIALIZING -> SENDING: one delivery row per audience row, all in one transaction.

    The rows are read, decided and written FREEZE_CHUNK at a time (a SQL audience straight
    from its server-side cursor), duplicates found through a file on disk, so memory does not
    grow with the audience. `domains` (the pre-flight's DNS verdicts; None when the run skips
    MX checks) skips rows whose domain cannot receive mail. Returns False (and fails the run)
    when the template cannot compile, the query fails, or rows do not render and the run's
    `on_render_error` is abort: then the chunks written are rolled back, nothing is frozen.
    Also False, failing nothing, when another worker took the run over meanwhile.
    """
    if run.step > 1:  # a follow-up: the recipients of the step before, not the audience
        return freeze_follow_up(ws, run, clock=clock)
    now = clock()
    try:
        with ExitStack() as stack:
            unsubscribe = unsubscribe_links(ws, run.options)
            queried = None
            if not _frozen_already(ws, run):
                queried = stack.enter_context(audience_query.queried_rows(ws, run))
            first_rows = stack.enter_context(FirstRowsOnDisk())
            with ws.db.begin() as conn:
                run_progress.lock_for_freeze(conn, run.id)
                if deliveries.has_deliveries(conn, run.id):  # frozen before a crash here
                    run_progress.freeze_plan(conn, run.id, (), now=now)
                    return True
                frozen = _write_plan(
                    ws, conn, run, queried, domains, unsubscribe, first_rows, clock
                )
                run_progress.freeze_plan(conn, run.id, (), now=now)
            with ws.db.begin() as conn:
                deliveries.refresh_statistics(conn, frozen)
        return True
    except _Refused as refused:
        reason = str(refused)
    except InputError as exc:  # the query failed, before or while its rows were read
        reason = f"audience query failed: {exc}"
    except ConfigError as exc:  # a stored secret (the SQL source's URL, the signing key)
        reason = str(exc)
    except RunLost:
        return False
    with ws.db.begin() as conn:  # nothing is frozen, none holds it
        run_progress.fail_initializing(conn, run.id, reason=reason, now=now)
    return False


def _write_plan(
    ws: Workspace,
    conn: Connection,
    run: Run,
    queried: Iterator[tuple[int, dict[str, Any]]] | None,
    domains: Mapping[str, DomainResult] | None,
    unsubscribe: UnsubscribeLinks | None,
    first_rows: FirstRows,
    clock: Clock,
) -> int:
    """Decide and insert the delivery rows chunk by chunk (returns how many); _Refused rolls
    them all back."""
    now = clock()
    workflow = workflows.get_workflow(conn, run.workflow_id)
    audience = audiences.get_audience(conn, workflow.audience_id)
    version = templates.get_version(conn, run.template_version_id or 0)
    engine = engines.get_engine(conn, run.engine_id or 0)
    try:
        template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    except TemplateError as exc:
        raise _Refused(f"template {version.name} v{version.version}: {exc}") from None
    plan = plan_deliveries(
        audiences.iter_rows(conn, audience.id) if queried is None else queried,
        email_column=audience.email_column,
        template=template,
        sender=SenderIdentity(engine.from_email, engine.from_name),
        run_date=run.created_at,
        domains=domains,
        unsubscribe=unsubscribe,
        test_environment=ws.settings.test_environment,
        first_rows=first_rows,
    )
    abort = run.options.on_render_error is RenderErrorPolicy.ABORT
    failures = RenderFailures()
    heartbeat = FreezeHeartbeat(ws, conn, run, clock=clock)
    frozen = 0
    for chunk in batched(plan, FREEZE_CHUNK):
        failures.note(chunk)
        heartbeat.beat()
        if abort and failures.count:  # read on only to count the rows that do not render
            continue
        pending_keys = [p.key for p in chunk if p.status is DeliveryStatus.PENDING and p.key]
        decided = mark_suppressed(list(chunk), suppressions.suppressed_among(conn, pending_keys))
        frozen += deliveries.insert_deliveries(
            conn, (_delivery_row(run.id, p, now) for p in decided)
        )
    reason = failures.abort_reason() if abort else None
    if reason:
        raise _Refused(reason)
    return frozen


def _delivery_row(run_id: int, p: PlannedDelivery, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
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


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last one shorter); `itertools.batched` from Python 3.12."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _frozen_already(ws: Workspace, run: Run) -> bool:
    """Frozen before a crash in this state: the query need not run again."""
    with ws.db.connect() as conn:
        return deliveries.has_deliveries(conn, run.id)


async def domain_verdicts(ws: Workspace, run: Run) -> dict[str, DomainResult] | None:
    """The DNS step of the pre-flight, before freezing; None when skipped or already frozen."""
    if run.options.skip_mx or run.step > 1:  # a follow-up's domains were checked by step 1
        return None
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
    return await freeze_domains.audience_domain_verdicts(ws, audience_id)
