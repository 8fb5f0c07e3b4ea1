"""Several workers on one run: daemons assisting a run another daemon owns, and adopting runs
whose holder is known dead.

An assisting worker claims batches through the same batch loop as the owner but never changes
the run's state; the owner finishes the run once no delivery is pending or held.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from outreach_core.adapters.store import daemons, runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Run
from outreach_core.domain.states import RunStatus, StopReason
from outreach_core.errors import ConfigError, RunBusy
from outreach_core.services.sending.batches import send_batches
from outreach_core.services.sending.context import open_context, send_window
from outreach_core.services.sending.failures import TRANSIENT_DB_ERRORS, abandon_assist
from outreach_core.services.sending.run import execute_guarded
from outreach_core.services.sending.workers import StopSignal, holder_is_alive, take_over

log = logging.getLogger("outreach.executor")


async def assist(
    ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> StopReason:
    """Help send a SENDING run that another live worker owns: claim batches (SKIP LOCKED on
    PostgreSQL) through the same batch loop, never change the run's state. The owner finishes
    the run (counts, report) once no delivery is pending or held. Returns why it stopped."""
    async with AsyncExitStack() as stack:
        try:
            ctx = await open_context(
                ws,
                stack,
                run,
                worker_id=worker_id,
                owner=False,
                window=send_window(run.options),
                clock=clock,
            )
        except ConfigError as exc:  # e.g. the signing key opens with no key this process has
            log.warning("run %s: cannot assist: %s", run.id, exc)
            return StopReason.ENGINE
        if all(lane.error is not None for lane in ctx.lanes):  # the owner carries on alone
            log.warning("run %s: cannot assist: no engine opens here", run.id)
            return StopReason.ENGINE
        return await send_batches(ctx, stop, asyncio.Event())


def assist_runs(
    ws: Workspace, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> list[int]:
    """Join every SENDING run held by another live daemon; the ids of the runs helped.

    Deliberate: a run sent in the foreground by `send` or by the dashboard is left to its own
    executor, so its rate stays the one the user gave.
    """
    now = clock()
    with ws.db.connect() as conn:
        sending = [
            r
            for r in runs.active_runs(conn)
            if r.status is RunStatus.SENDING
            and r.worker_id not in (None, worker_id)
            and daemons.get_daemon(conn, r.worker_id or "") is not None
        ]
    helped = []
    for run in sending:
        if stop.is_set():
            break
        if not holder_is_alive(run, now=now):
            continue
        try:
            why = asyncio.run(assist(ws, run, worker_id=worker_id, stop=stop, clock=clock))
        except (*TRANSIENT_DB_ERRORS, ConfigError):
            raise  # the database away, the key wrong: not this run's doing (see execute_guarded)
        except Exception as exc:  # the owner ends the run if it trips on the same data
            abandon_assist(ws, run.id, worker_id=worker_id, exc=exc, clock=clock)
            continue
        log.info("run %s: assisted by %s until %s", run.id, worker_id, why)
        helped.append(run.id)
    return helped


def adopt_dead_holders_runs(
    ws: Workspace, *, worker_id: str, stop: StopSignal, clock: Clock = utcnow
) -> list[Run]:
    """Take over and finish active runs whose holder is known dead before its heartbeat goes
    stale (a process on this host that no longer exists); `work_once` covers stale ones."""
    now = clock()
    with ws.db.connect() as conn:
        candidates = [
            r
            for r in runs.active_runs(conn)
            if r.worker_id not in (None, worker_id) and not holder_is_alive(r, now=now)
        ]
    done = []
    for run in candidates:
        if stop.is_set():
            break
        try:
            taken = take_over(ws, run.id, worker_id=worker_id, clock=clock)
        except RunBusy:
            continue
        done.append(execute_guarded(ws, taken, worker_id=worker_id, stop=stop, clock=clock))
    return done
