"""A run whose execution raised what no stage expected: ended with the reason and let go.

One run's data must not stop a worker: a row the database refuses while the run freezes, or a
bug its data trips, would otherwise escape the daemon's tick, end the process, and, the run
still INITIALIZING under a dead holder, end the next daemon too as it takes the run over.
So the run is moved where no executor picks it up again by itself: an INITIALIZING run
becomes FAILED (nothing was sent; queue a new run once the data is fixed), a SENDING one
PAUSED with no resume time (its ledger stays as recorded; `resume` continues it, the
deliveries in flight becoming `unknown`). Both are released, so the worker goes on with the
other runs and never retries this one in a loop.

The reason names the problem without quoting what may hold a secret: a database error gives
its driver's first line (about the data, never the connection), any other error its type,
where it was raised and its message with URLs masked.
"""

from __future__ import annotations

import logging
import re
import traceback

import sqlalchemy as sa

from outreach_core.adapters.store import audit, delivery_claims, run_progress, runs
from outreach_core.adapters.url_secrets import mask_url
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.control_chars import printable
from outreach_core.domain.models import Run
from outreach_core.domain.states import RunStatus

log = logging.getLogger("outreach.executor")

#: the database unreachable, locked or out of connections: not the run's doing, so these
#: propagate (the daemon's tick tries again; the run, still held, is taken over when stale)
TRANSIENT_DB_ERRORS = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.DisconnectionError,
    sa.exc.TimeoutError,
)
#: the longest reason stored on the run (a driver's message may quote a long value)
MAX_REASON = 400
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def failure_reason(exc: BaseException, *, stage: str) -> str:
    """What went wrong while at `stage`, for the run's status reason and the log: one line,
    no control character, no secret."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper of a database driver's error
    if isinstance(orig, BaseException):
        driver = f"{_first_line(orig)} ({type(orig).__name__})"
        text = f"the database refused the run's data while {stage}: {driver}"
    else:
        # where in the product it was raised: the deepest frame of ours, else the deepest
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if "outreach_core" in f.filename] or frames
        at = f" at {ours[-1].filename.rsplit('/', 1)[-1]}:{ours[-1].lineno}" if ours else ""
        message = _first_line(exc)
        text = f"unexpected error while {stage}: {type(exc).__name__}{at}"
        text += f": {message}" if message else ""
    text = " ".join(printable(text).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return _URL.sub(lambda m: mask_url(m.group(0)), lines[0]) if lines else ""


def record_failure(
    ws: Workspace,
    run_id: int,
    *,
    worker_id: str,
    exc: BaseException,
    clock: Clock = utcnow,
) -> Run:
    """End the run this worker holds after `exc`: FAILED when it was INITIALIZING, PAUSED
    (no resume time) when SENDING, released either way, with the reason on the run, in the
    audit log (`run.failed`) and in the log (`event=run.failed`). A run no longer this
    worker's (cancelled, taken over) is left as it is."""
    now = clock()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        stage = "freezing the audience" if run.status is RunStatus.INITIALIZING else "sending"
        reason = failure_reason(exc, stage=stage)
        mine = run.worker_id == worker_id
        if mine and run.status is RunStatus.INITIALIZING:
            run_progress.fail_initializing(conn, run_id, reason=reason, now=now)
        elif mine and run.status is RunStatus.SENDING:
            run_progress.pause_run(conn, run_id, worker_id=worker_id, reason=reason, now=now)
        elif mine:
            runs.release_run(conn, run_id, worker_id=worker_id)
        after = runs.get_run(conn, run_id)
        audit.record(
            conn,
            actor=worker_id,
            action="run.failed",
            subject=f"run {run_id}",
            now=now,
            detail={"status": str(after.status), "reason": reason},
        )
    log.error("event=run.failed run=%s status=%s reason=%r", run_id, after.status, reason)
    return after


def abandon_assist(
    ws: Workspace, run_id: int, *, worker_id: str, exc: BaseException, clock: Clock = utcnow
) -> int:
    """Stop helping with a run after `exc`: the deliveries this worker had claimed become
    `unknown` (they may have gone out; never resent), so the owner, which waits for a live
    helper's batches, can finish. The run itself is the owner's to end. How many."""
    reason = failure_reason(exc, stage="assisting")
    with ws.db.begin() as conn:
        lost = delivery_claims.mark_claimed_unknown(conn, run_id, claimed_by=worker_id, now=clock())
    log.error("event=run.assist_failed run=%s unknown=%s reason=%r", run_id, lost, reason)
    return lost
