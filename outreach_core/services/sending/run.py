"""One run driven by its owner: freeze, send its batches, end it; and a daemon's pass.

`execute` walks a run this worker holds through the stages (`freeze`, `context`, `batches`)
and `finish` turns why the batch loop stopped into the run's next state. `work_once` is what
a daemon does on each tick: adopt orphaned runs, resume runs whose pause is over, then claim
queued runs until none is left.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import datetime

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import retry_waits, run_progress, runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import cadence
from outreach_core.domain.cadence import SendWindow
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.dns_waits import DNS_RETRY_INTERVAL
from outreach_core.domain.engine_rotation import next_utc_midnight
from outreach_core.domain.models import Run
from outreach_core.domain.states import FINAL_RUN_STATES, RunStatus, StopReason
from outreach_core.errors import ConfigError, RunBusy, SendError
from outreach_core.services.sending import report
from outreach_core.services.sending.batches import send_batches, waiting_reason
from outreach_core.services.sending.context import heartbeat, open_context, send_window
from outreach_core.services.sending.failures import TRANSIENT_DB_ERRORS, record_failure
from outreach_core.services.sending.freeze import domain_verdicts, freeze_audience
from outreach_core.services.sending.workers import (
    STALE_AFTER,
    StopSignal,
    acquire_run,
    take_over,
)

log = logging.getLogger("outreach.executor")


async def execute(
    ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> Run:
    """Drive a run this worker holds (INITIALIZING or SENDING) as far as it can go.

    The run sends through every engine its workflow lists when execution starts (also on a
    resume): the list is read here rather than frozen at queue time, so an engine added to a
    workflow whose quotas ran out takes over the remaining rows when the run continues.
    """
    looked_up_at = None  # when this execution's freeze asked DNS: no need to ask again so soon
    if run.status is RunStatus.INITIALIZING:
        domains = await domain_verdicts(ws, run)
        if not freeze_audience(ws, run, domains=domains, clock=clock):
            with ws.db.connect() as conn:
                return runs.get_run(conn, run.id)
        looked_up_at = clock() if domains is not None else None
    with ws.db.connect() as conn:
        run = runs.get_run(conn, run.id)
    window = send_window(run.options)
    lost = asyncio.Event()
    beat = asyncio.create_task(heartbeat(ws, run.id, worker_id, lost, clock=clock))
    try:
        async with AsyncExitStack() as stack:
            ctx = await open_context(
                ws, stack, run, worker_id=worker_id, owner=True, window=window, clock=clock
            )
            ctx.dns_checked_at = looked_up_at
            why = await send_batches(ctx, stop, lost)
            reason = ctx.stop_reason
    except SendError as exc:  # an engine failed while closing
        why, reason = StopReason.ENGINE, f"engine error: {exc}"
    except ConfigError as exc:  # a stored secret no key opens: paused and let go, not held
        why, reason = StopReason.ENGINE, str(exc)
    finally:
        beat.cancel()
    finished = finish(
        ws, run.id, worker_id=worker_id, why=why, reason=reason, window=window, clock=clock
    )
    # a DNS pause comes back every DNS_RETRY_INTERVAL: the report waits for the run's end
    if finished.status in FINAL_RUN_STATES or (
        finished.status is RunStatus.PAUSED and why is not StopReason.DNS
    ):
        report.mail_run_report(ws, run.id)
    return finished


def execute_guarded(
    ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> Run:
    """`execute` in an event loop of its own, so that one run never stops its worker: an error
    no stage expected (a row the database refuses, a bug the data trips) ends that run with the
    reason and lets it go (`failures.record_failure`), and the worker goes on.

    Two kinds still propagate, being about the process rather than the run: the database
    unreachable or locked (`TRANSIENT_DB_ERRORS`: the caller tries again later; the run, still
    held, is taken over once its heartbeat is stale) and a ConfigError (the secret key).
    """
    try:
        return asyncio.run(execute(ws, run, worker_id=worker_id, stop=stop, clock=clock))
    except (*TRANSIENT_DB_ERRORS, ConfigError):
        raise
    except Exception as exc:
        return record_failure(ws, run.id, worker_id=worker_id, exc=exc, clock=clock)


def finish(
    ws: Workspace,
    run_id: int,
    *,
    worker_id: str,
    why: StopReason,
    reason: str | None,
    window: SendWindow | None,
    clock: Clock = utcnow,
) -> Run:
    """The run's next state from why its batch loop stopped, if it is still where the loop
    left it (a user may have paused or cancelled it meanwhile)."""
    now = clock()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        sending = run.status is RunStatus.SENDING
        if why is StopReason.TIME and sending:
            limit = run.options.time_limit_minutes or 0.0
            run_progress.complete_at_time_limit(conn, run_id, limit_minutes=limit, now=now)
        elif why is StopReason.DONE and sending:
            run_progress.complete_run(conn, run_id, now=now)
        elif why is StopReason.WAIT and sending:
            _wait_or_complete(conn, run_id, worker_id=worker_id, now=now)
        elif why is StopReason.QUOTA and sending:
            resume_at = next_utc_midnight(now)
            runs.pause_until(conn, run_id, resume_at=resume_at, reason=reason or "", now=now)
            log.info("run %s: %s", run_id, reason)
        elif why is StopReason.DNS and sending:
            resume_at = now + DNS_RETRY_INTERVAL
            reason = f"{reason}; looked up again from {resume_at:%H:%M:%S} UTC"
            runs.pause_until(conn, run_id, resume_at=resume_at, reason=reason, now=now)
            log.info("run %s: %s", run_id, reason)
        elif why in (StopReason.ENGINE, StopReason.AUTO) and sending:
            run_progress.pause_run(conn, run_id, worker_id=worker_id, reason=reason, now=now)
        elif why is StopReason.WINDOW and window is not None and sending:
            runs.pause_until(
                conn,
                run_id,
                resume_at=cadence.next_window_open(window, run.options.timezone, now),
                reason=f"outside the send window {window} {run.options.timezone}",
                now=now,
            )
        elif why is StopReason.STATUS and run.status is RunStatus.PAUSED:
            runs.release_run(conn, run_id, worker_id=worker_id)  # paused by a user: resumable
            log.info("run %s: paused; resumable with `resume %s`", run_id, run_id)
        elif why is StopReason.STOP:
            runs.release_run(conn, run_id, worker_id=worker_id)
            log.info("run %s: stopped on request; resumable with `resume %s`", run_id, run_id)
        return runs.get_run(conn, run_id)


def _wait_or_complete(conn: Connection, run_id: int, *, worker_id: str, now: datetime) -> None:
    """Let the run go until its earliest scheduled retry (it stays SENDING, and no process
    holds it meanwhile), or complete it when none is left waiting after all."""
    waiting = retry_waits.waiting(conn, run_id)
    if not waiting.count or waiting.next_at is None:
        run_progress.complete_run(conn, run_id, now=now)
        return
    reason = waiting_reason(waiting.count, waiting.next_at)
    if retry_waits.wait_for_retries(
        conn, run_id, worker_id=worker_id, resume_at=waiting.next_at, reason=reason
    ):
        log.info("run %s: %s", run_id, reason)


def run_to_end(
    ws: Workspace, run_id: int, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> Run:
    """Acquire a run and execute it in this thread's own event loop."""
    run = acquire_run(ws, run_id, worker_id=worker_id, clock=clock)
    return execute_guarded(ws, run, worker_id=worker_id, stop=stop, clock=clock)


def resume_due(
    ws: Workspace, run_id: int, *, worker_id: str, now: datetime, clock: Clock = utcnow
) -> Run | None:
    """Take a PAUSED run whose `resume_at` is at or before `now` back to SENDING for this
    worker; None when another executor was first or the run is no longer due (a user's pause
    has no `resume_at` and is never resumed here)."""
    with ws.db.begin() as conn:
        return run_progress.resume_due(conn, run_id, worker_id=worker_id, due_at=now, now=clock())


def work_once(
    ws: Workspace,
    *,
    worker_id: str,
    stop: StopSignal,
    now: datetime | None = None,
    clock: Clock = utcnow,
) -> list[Run]:
    """One pass of a daemon: adopt orphaned runs, resume runs paused until a time that has
    passed (`now`, default the clock: e.g. daily quotas renewed), take up runs whose deferred
    deliveries are due for their scheduled retry, then execute queued runs until none is
    left."""
    done: list[Run] = []
    with ws.db.connect() as conn:
        orphans = runs.orphaned_runs(conn, heartbeat_before=clock() - STALE_AFTER)
    for orphan in orphans:
        if stop.is_set():
            return done
        try:
            run = take_over(ws, orphan.id, worker_id=worker_id, clock=clock)
        except RunBusy:
            continue
        done.append(execute_guarded(ws, run, worker_id=worker_id, stop=stop, clock=clock))
    due_at = now or clock()
    with ws.db.connect() as conn:
        due = runs.due_paused_runs(conn, now=due_at)
    for paused in due:
        if stop.is_set():
            return done
        resumed = resume_due(ws, paused.id, worker_id=worker_id, now=due_at, clock=clock)
        if resumed is None:
            continue
        log.info(
            "run %s: resumed by %s (was paused until %s)", paused.id, worker_id, paused.resume_at
        )
        done.append(execute_guarded(ws, resumed, worker_id=worker_id, stop=stop, clock=clock))
    done += _retry_due(ws, worker_id=worker_id, stop=stop, due_at=due_at, clock=clock)
    while not stop.is_set():
        with ws.db.begin() as conn:
            run = runs.claim_next_run(conn, worker_id=worker_id, now=clock())
        if run is None:
            break
        log.info("run %s: claimed by %s", run.id, worker_id)
        done.append(execute_guarded(ws, run, worker_id=worker_id, stop=stop, clock=clock))
    return done


def _retry_due(
    ws: Workspace, *, worker_id: str, stop: StopSignal, due_at: datetime, clock: Clock
) -> list[Run]:
    """Execute the waiting runs whose earliest scheduled retry is due at `due_at`: each is
    taken by one executor only, sends what is due and is let go again (or completes)."""
    done: list[Run] = []
    with ws.db.connect() as conn:
        due = retry_waits.due_waiting_runs(conn, now=due_at)
    for run_id in due:
        if stop.is_set():
            break
        with ws.db.begin() as conn:
            if not retry_waits.claim_waiting_run(
                conn, run_id, worker_id=worker_id, due_at=due_at, now=clock()
            ):
                continue
            run = runs.get_run(conn, run_id)
        log.info("run %s: retrying its deferred deliveries (%s)", run_id, worker_id)
        done.append(execute_guarded(ws, run, worker_id=worker_id, stop=stop, clock=clock))
    return done
