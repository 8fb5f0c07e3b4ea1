"""Who sends a run: worker ids, whether a holder is still alive, and taking a run over.

A run is held by one executor (its owner, named on the run with a heartbeat); other live
daemons may assist it by claiming batches. When a holder is gone, the deliveries it had
handed to an engine without recording become `unknown`: they may have gone out, so they are
never resent (at-most-once). What it had claimed but not handed over goes back to pending.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import daemons, deliveries, delivery_claims, run_progress, runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Run
from outreach_core.domain.states import ACTIVE_RUN_STATES, RunStatus
from outreach_core.errors import RunBusy

log = logging.getLogger("outreach.executor")

#: a run whose heartbeat is older than this is taken to be orphaned
STALE_AFTER = timedelta(seconds=60)
#: a daemon silent this long no longer holds its claimed deliveries
DAEMON_STALE_AFTER = timedelta(seconds=30)


def new_worker_id() -> str:
    """`host:pid:random`: enough to tell whether a holder's process is still alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_alive(run: Run, *, now: datetime) -> bool:
    """Whether the executor named on the run is still working on it.

    On this host a dead process is known at once; elsewhere only a stale heartbeat tells.
    """
    if run.worker_id is None or run.heartbeat_at is None:
        return False
    if now - run.heartbeat_at > STALE_AFTER:
        return False
    host, _, rest = run.worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


@dataclass
class StopSignal:
    """Set by SIGTERM/SIGINT: the executor finishes the sends under way, then lets the run go."""

    event: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def acquire_run(ws: Workspace, run_id: int, *, worker_id: str, clock: Clock = utcnow) -> Run:
    """Make this worker the executor of a run: claim it if QUEUED, continue it if PAUSED,
    take it over if its previous executor is gone. Raises RunBusy otherwise."""
    with ws.db.begin() as conn:
        claimed = runs.claim_next_run(conn, worker_id=worker_id, now=clock(), run_id=run_id)
        if claimed:
            return claimed
        run = runs.get_run(conn, run_id)
        if run.status is RunStatus.PAUSED:
            return run_progress.continue_paused(conn, run_id, worker_id=worker_id, now=clock())
    return take_over(ws, run_id, worker_id=worker_id, clock=clock)


def take_over(ws: Workspace, run_id: int, *, worker_id: str, clock: Clock = utcnow) -> Run:
    """Become the executor of an interrupted run; in-flight deliveries become `unknown`
    (claimed ones never handed to an engine go back to pending).

    Raises RunBusy while its previous executor is alive.
    """
    now = clock()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in ACTIVE_RUN_STATES:
            raise RunBusy(f"{run} has nothing to resume")
        if holder_is_alive(run, now=now):
            raise RunBusy(
                f"{run} is being sent by {run.worker_id} (heartbeat {run.heartbeat_at:%H:%M:%S} "
                "UTC); try again once that process has stopped"
            )
        if not runs.take_over_run(conn, run, worker_id=worker_id, now=now):
            raise RunBusy(f"run {run_id} was just taken over by another executor")
        unknown = _mark_abandoned_unknown(conn, run, worker_id=worker_id, now=now)
        if unknown:
            log.warning(
                "run %s: %s in-flight deliveries marked unknown, not resent", run_id, unknown
            )
        return runs.get_run(conn, run_id)


def _mark_abandoned_unknown(conn: Connection, run: Run, *, worker_id: str, now: datetime) -> int:
    """In-flight deliveries of the run's previous holder, and of any claimant that is not a live
    daemon, become `unknown` when handed to an engine, else go back to pending. A live daemon
    assisting the run keeps its batch: it records those outcomes itself, so the ledger says
    `sent` for what went out."""
    marked = 0
    for claimant in delivery_claims.in_flight_claimants(conn, run.id, besides=worker_id):
        daemon = daemons.get_daemon(conn, claimant) if claimant else None
        assisting = (
            claimant != run.worker_id
            and daemon is not None
            and daemon.is_alive(now=now, stale_after=DAEMON_STALE_AFTER)
        )
        if not assisting:
            marked += delivery_claims.settle_claimed(conn, run.id, claimed_by=claimant, now=now)
    return marked


def others_done(ws: Workspace, run_id: int, *, worker_id: str, now: datetime) -> bool:
    """Whether no other worker holds deliveries of the run; a dead one's become `unknown` when
    handed to an engine, and the others go back to pending: then it is not done either."""
    with ws.db.begin() as conn:
        others = delivery_claims.in_flight_claimants(conn, run_id, besides=worker_id)
        waiting = False
        for worker in others:
            daemon = daemons.get_daemon(conn, worker) if worker else None
            if daemon and daemon.is_alive(now=now, stale_after=DAEMON_STALE_AFTER):
                waiting = True
                continue
            lost = delivery_claims.settle_claimed(conn, run_id, claimed_by=worker, now=now)
            log.warning("run %s: %s deliveries of gone worker %s marked unknown, not resent",
                        run_id, lost, worker)  # fmt: skip
        if others and deliveries.has_pending(conn, run_id):
            waiting = True  # what the gone worker had not handed over is to be sent
    return not waiting
