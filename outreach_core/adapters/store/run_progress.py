"""A run's walk through its executor, one call per step, each in the caller's transaction.

Its plan frozen (INITIALIZING -> SENDING, or FAILED when it cannot be), a paused run taken
back, and its end: COMPLETED (with what was left unsent when cut short) or PAUSED. The single
status changes and claims these build on are in `runs`; the delivery rows in `deliveries`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import deliveries, in_flight, retry_waits, runs
from outreach_core.domain.models import Run
from outreach_core.domain.states import RunStatus


def lock_for_freeze(conn: Connection, run_id: int) -> None:
    """SQLite: take the database's write lock before a freeze reads anything (a no-op UPDATE
    of the run). The freeze walks the audience with an open cursor while it inserts chunks;
    begun by a read, its first INSERT would have to upgrade that read snapshot to a writer,
    which SQLite refuses ("database is locked") once another process has committed since the
    snapshot: two freezes, or a freeze and a daemon's heartbeat, then wait each other out.
    PostgreSQL needs nothing: its writers do not wait on readers."""
    if conn.dialect.name == "sqlite":
        runs.touch_run(conn, run_id)


def freeze_plan(
    conn: Connection, run_id: int, rows: Iterable[dict[str, Any]], *, now: datetime
) -> int:
    """Insert the run's delivery rows and move it INITIALIZING -> SENDING; how many rows.

    With no rows, only the status moves: for a run frozen before a crash in this state.
    """
    inserted = deliveries.insert_deliveries(conn, rows)
    runs.set_run_status(
        conn, run_id, expected=RunStatus.INITIALIZING, target=RunStatus.SENDING, now=now
    )
    return inserted


def fail_initializing(conn: Connection, run_id: int, *, reason: str, now: datetime) -> None:
    """INITIALIZING -> FAILED with the reason the audience could not be frozen."""
    runs.set_run_status(
        conn,
        run_id,
        expected=RunStatus.INITIALIZING,
        target=RunStatus.FAILED,
        now=now,
        reason=reason,
    )


def continue_paused(conn: Connection, run_id: int, *, worker_id: str, now: datetime) -> Run:
    """PAUSED -> SENDING for this worker; deliveries left in flight are settled: `unknown` if
    handed to their engine, else back to pending (`in_flight.settle`)."""
    runs.set_run_status(
        conn,
        run_id,
        expected=RunStatus.PAUSED,
        target=RunStatus.SENDING,
        now=now,
        worker_id=worker_id,
    )
    in_flight.settle(conn, run_id, now=now)
    return runs.get_run(conn, run_id)


def resume_due(
    conn: Connection, run_id: int, *, worker_id: str, due_at: datetime, now: datetime
) -> Run | None:
    """A run paused until `due_at` or earlier back to SENDING for this worker (heartbeat
    `now`), deliveries left in flight settled (`in_flight.settle`); None when another
    executor was first or the run is not due (a user's pause has no resume time)."""
    if not runs.resume_due_run(conn, run_id, worker_id=worker_id, due_at=due_at, now=now):
        return None
    in_flight.settle(conn, run_id, now=now)
    return runs.get_run(conn, run_id)


def complete_run(conn: Connection, run_id: int, *, now: datetime) -> None:
    """SENDING -> COMPLETED: every delivery has an outcome."""
    runs.set_run_status(
        conn, run_id, expected=RunStatus.SENDING, target=RunStatus.COMPLETED, now=now
    )


def complete_at_time_limit(
    conn: Connection, run_id: int, *, limit_minutes: float, now: datetime
) -> int:
    """SENDING -> COMPLETED when the run's time is up: its pending deliveries become `skipped`
    (time_limit) and the run's reason says how many; returns that number."""
    left = deliveries.skip_pending(
        conn, run_id, reason=f"time_limit: the run's {limit_minutes:g} min were up", now=now
    )
    retry_waits.stop_waiting(conn, run_id)  # deferred rows stay deferred, for a person's retry
    runs.set_run_status(
        conn,
        run_id,
        expected=RunStatus.SENDING,
        target=RunStatus.COMPLETED,
        now=now,
        reason=f"time limit of {limit_minutes:g} min reached; {left} recipients left unsent",
    )
    return left


def pause_run(
    conn: Connection, run_id: int, *, worker_id: str, reason: str | None, now: datetime
) -> None:
    """SENDING -> PAUSED by its executor, with no resume time (a user resumes it), and let go."""
    runs.set_run_status(
        conn, run_id, expected=RunStatus.SENDING, target=RunStatus.PAUSED, now=now, reason=reason
    )
    runs.release_run(conn, run_id, worker_id=worker_id)
