"""Runs: queueing one, the user's actions on it (pause, resume, cancel, retry, as
RUN_ACTIONS allows them), executing it in a background thread of this process, and the
read views of runs (a summary, the recent runs, Home's overview)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import (
    audiences,
    audit,
    deliveries,
    engines,
    in_flight,
    retry_waits,
    runs,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Overview, Run, RunSummary, SendOptions
from outreach_core.domain.states import (
    RUN_ACTIONS,
    DeliveryStatus,
    RunAction,
    RunStatus,
    statuses_allowing,
)
from outreach_core.errors import IllegalTransition, OutreachError, RunBusy
from outreach_core.services import run_summaries, sending

log = logging.getLogger("outreach.services")


def queue_run(
    ws: Workspace,
    workflow_id: int,
    *,
    trigger: str,
    actor: str,
    options: SendOptions | None = None,
) -> int:
    """Insert a QUEUED run with the template version and engine it will use; returns its id."""
    now = utcnow()
    with ws.db.begin() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        run_id = runs.insert_workflow_run(conn, workflow, trigger=trigger, now=now, options=options)
        audit.record(
            conn,
            actor=actor,
            action="run.queue",
            subject=f"run {run_id}",
            now=now,
            detail={"workflow": workflow.name, "trigger": trigger},
        )
        return run_id


def run_summary(ws: Workspace, run_id: int) -> RunSummary:
    """A run with its delivery counts."""
    return run_summaries.run_summary(ws, run_id)


def recent_runs(ws: Workspace, *, limit: int = 20) -> list[RunSummary]:
    """The latest runs with their counts, newest first."""
    with ws.db.connect() as conn:
        return _recent_runs(conn, limit)


def _recent_runs(conn: Connection, limit: int) -> list[RunSummary]:
    latest = runs.list_runs(conn, limit=limit)
    names = workflows.workflow_names(conn, [r.workflow_id for r in latest])
    counts = deliveries.counts_for_runs(conn, [r.id for r in latest])
    waiting = retry_waits.waiting_for_runs(conn, [r.id for r in latest])
    return [
        RunSummary(
            run=r,
            workflow_name=names.get(r.workflow_id, "?"),
            counts=counts[r.id],
            retries_waiting=waiting[r.id].count,
            next_retry_at=waiting[r.id].next_at,
        )
        for r in latest
    ]


def overview(ws: Workspace, *, recent: int = 10) -> Overview:
    """Counts of everything and the latest runs, for Home."""
    with ws.db.connect() as conn:
        counts = {
            "audiences": audiences.count_audiences(conn),
            "templates": templates.count_templates(conn),
            "engines": engines.count_engines(conn),
            "workflows": workflows.count_workflows(conn),
            "runs": runs.count_runs(conn),
        }
        return Overview(**counts, recent_runs=_recent_runs(conn, recent))


def _move_run(ws: Workspace, run_id: int, *, action: RunAction, target: RunStatus,
              actor: str, reason: str, now: datetime | None = None) -> Run:  # fmt: skip
    now = now or utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in RUN_ACTIONS[action]:
            raise IllegalTransition(
                f"{run} cannot be {target.lower()}; only runs that are "
                + " or ".join(statuses_allowing(action))
                + " can"
            )
        runs.set_run_status(
            conn, run_id, expected=run.status, target=target, now=now, reason=reason
        )
        detail: dict[str, object] = {"from": str(run.status)}
        if target is RunStatus.CANCELLED:
            # in the run's own transaction: no pending row outlives the cancel; rows in flight
            # keep the outcome their batch records (or become cancelled if never started)
            detail["cancelled"] = deliveries.cancel_pending(conn, run_id, reason=reason, now=now)
            # deferred rows are no longer retried on their schedule: they keep their last reply
            retry_waits.stop_waiting(conn, run_id)
        audit.record(
            conn,
            actor=actor,
            action=f"run.{target.lower()}",
            subject=f"run {run_id}",
            now=now,
            detail=detail,
        )
        return runs.get_run(conn, run_id)


def pause_run(ws: Workspace, run_id: int, *, actor: str) -> Run:
    """SENDING -> PAUSED. The executor finishes its current batch, records it and lets go;
    `resume` (CLI or page) continues with the pending rows."""
    return _move_run(
        ws, run_id, action=RunAction.PAUSE, target=RunStatus.PAUSED, actor=actor,
        reason=f"paused by {actor}",
    )  # fmt: skip


def cancel_reason(actor: str, now: datetime) -> str:
    """The reason a cancelled run and its unsent deliveries carry: who cancelled, and when."""
    return f"cancelled: by {actor} at {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def cancel_run(ws: Workspace, run_id: int, *, actor: str, clock: Clock = utcnow) -> Run:
    """Any live run -> CANCELLED, and its pending deliveries -> `cancelled` in the same
    transaction, with the reason naming who cancelled. The current batch is finished and
    recorded; what it had not started becomes `cancelled` too. Final: retry refuses it."""
    now = clock()
    return _move_run(
        ws, run_id, action=RunAction.CANCEL, target=RunStatus.CANCELLED, actor=actor,
        reason=cancel_reason(actor, now), now=now,
    )  # fmt: skip


def retry_unsettled(ws: Workspace, run_id: int, *, include_unknown: bool, actor: str) -> int:
    """Put a run's `deferred` deliveries (and its `unknown` ones, only with `include_unknown`:
    they may have been delivered, so resending risks a duplicate) back to `pending`, and
    re-queue the run (COMPLETED or PAUSED -> QUEUED) so an executor sends them.

    Returns how many deliveries were put back; 0 changes nothing. Each row keeps its attempts
    (the executor adds the new ones) and its reason gains a "manual retry" note. A PAUSED run
    must have been let go by its executor; rows that one left mid-send are settled first, as a
    resume would settle them: `unknown` if handed to their engine, else back to pending.

    A resent `unknown` delivery carries the Message-ID stored when it was first handed over, so
    a mailbox that has the first copy can tell the second is the same message.
    """
    now = utcnow()
    statuses = [DeliveryStatus.DEFERRED] + ([DeliveryStatus.UNKNOWN] if include_unknown else [])
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in RUN_ACTIONS[RunAction.RETRY]:
            raise IllegalTransition(
                f"{run} cannot be retried; only COMPLETED or PAUSED runs can (pause it first)"
            )
        if run.status is RunStatus.PAUSED:
            if sending.holder_is_alive(run, now=now):
                raise RunBusy(f"{run} is still held by {run.worker_id}; retry once it has let go")
            in_flight.settle(conn, run_id, now=now)
        before = deliveries.counts(conn, run_id)
        kinds = " and ".join(str(s) for s in statuses)
        moved = deliveries.requeue(
            conn, run_id, statuses=statuses, note=f"manual retry by {actor}; before: ", now=now
        )
        if not moved:
            return 0
        runs.reopen_run(
            conn,
            run_id,
            expected=run.status,
            now=now,
            reason=f"retry of {moved} {kinds} deliveries asked by {actor}",
        )
        audit.record(
            conn,
            actor=actor,
            action="run.retry",
            subject=f"run {run_id}",
            now=now,
            detail={
                "from": str(run.status),
                "deferred": before.deferred,
                "unknown": before.unknown if include_unknown else 0,
                "include_unknown": include_unknown,
            },
        )
        return moved


def resume_in_background(ws: Workspace, run_id: int, *, actor: str) -> threading.Thread:
    """Record who resumed the run, then continue it in a thread of this process."""
    now = utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        audit.record(
            conn,
            actor=actor,
            action="run.resume",
            subject=f"run {run_id}",
            now=now,
            detail={"status": str(run.status)},
        )
    return execute_in_background(ws, run_id)


def execute_in_background(ws: Workspace, run_id: int) -> threading.Thread:
    """Execute (or continue) a run in a daemon thread of this process; returns the thread.

    The thread has its own StopSignal and worker id. Claiming is atomic, so when the
    scheduler daemon (or another thread) got the run first this thread logs it and ends.
    """

    def work() -> None:
        try:
            sending.run_to_end(
                ws, run_id, worker_id=sending.new_worker_id(), stop=sending.StopSignal()
            )
        except OutreachError as exc:
            log.info("run %s: not executed here: %s", run_id, exc)
        except Exception:
            log.exception("run %s: executing in the background failed", run_id)

    thread = threading.Thread(target=work, name=f"outreach-run-{run_id}", daemon=True)
    thread.start()
    return thread
