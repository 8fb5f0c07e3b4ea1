"""Deferred deliveries waiting for their scheduled retry, and the runs that wait for them.

A delivery deferred with a `next_attempt_at` is put back to `pending` once that time has
come (`release_due`), so the batch loop claims it like any other row. A run left with only
such rows stays SENDING but is let go (no holder, `resume_at` = the earliest retry): no process
holds or spins on it, the orphan check passes it over, and a daemon's pass takes it again
when the retry is due (`due_waiting_runs`, `claim_waiting_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import UTCDateTime, deliveries, runs
from outreach_core.domain.models import Delivery
from outreach_core.domain.states import DeliveryStatus, RunStatus, check_delivery_transition

_SCHEDULED = sa.and_(
    deliveries.c.status == DeliveryStatus.DEFERRED, deliveries.c.next_attempt_at.is_not(None)
)


@dataclass(frozen=True)
class Waiting:
    """How many deliveries of a run wait for a scheduled retry, and the earliest retry."""

    count: int = 0
    next_at: datetime | None = None


def release_due(conn: Connection, run_id: int, *, now: datetime) -> int:
    """The run's deferred deliveries whose retry time has come go back to `pending` (keeping
    their attempts, last reply and `deferred_since`); returns how many."""
    check_delivery_transition(DeliveryStatus.DEFERRED, DeliveryStatus.PENDING)
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.run_id == run_id, _SCHEDULED, deliveries.c.next_attempt_at <= now)
        .values(status=DeliveryStatus.PENDING, claimed_by=None, next_attempt_at=None)
    )
    return result.rowcount


def waiting(conn: Connection, run_id: int) -> Waiting:
    """The run's deliveries waiting for a scheduled retry."""
    return waiting_for_runs(conn, [run_id])[run_id]


def waiting_for_runs(conn: Connection, run_ids: list[int]) -> dict[int, Waiting]:
    """`waiting` of several runs in one query (runs without any get an empty Waiting)."""
    found = dict.fromkeys(run_ids, Waiting())
    if run_ids:
        rows = conn.execute(
            sa.select(
                deliveries.c.run_id,
                sa.func.count(),
                # typed, so SQLite's stored text comes back as an aware datetime
                sa.type_coerce(sa.func.min(deliveries.c.next_attempt_at), UTCDateTime()),
            )
            .where(deliveries.c.run_id.in_(run_ids), _SCHEDULED)
            .group_by(deliveries.c.run_id)
        )
        for run_id, n, first in rows:
            found[int(run_id)] = Waiting(int(n), first)
    return found


def list_waiting(conn: Connection, run_id: int, *, limit: int) -> list[Delivery]:
    """The run's deliveries waiting for a scheduled retry, the soonest first."""
    rows = conn.execute(
        sa.select(deliveries)
        .where(deliveries.c.run_id == run_id, _SCHEDULED)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    return [Delivery.model_validate(dict(row._mapping)) for row in rows]


def stop_waiting(conn: Connection, run_id: int) -> int:
    """No more scheduled retries for the run (it ended): its waiting deliveries stay
    `deferred` with their last reply, for a person's retry."""
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.run_id == run_id, _SCHEDULED)
        .values(next_attempt_at=None)
    )
    return result.rowcount


def wait_for_retries(
    conn: Connection, run_id: int, *, worker_id: str, resume_at: datetime, reason: str
) -> bool:
    """Let go of a SENDING run this worker holds until `resume_at`, with the reason saying
    what it waits for; False when the run is no longer this worker's or no longer SENDING."""
    result = conn.execute(
        runs.update()
        .where(
            runs.c.id == run_id,
            runs.c.status == RunStatus.SENDING,
            runs.c.worker_id == worker_id,
        )
        .values(worker_id=None, heartbeat_at=None, resume_at=resume_at, status_reason=reason)
    )
    return result.rowcount == 1


#: a SENDING run let go to wait for its retries (not a crashed one: its holder left on purpose)
WAITING_RUN = sa.and_(
    runs.c.status == RunStatus.SENDING,
    runs.c.worker_id.is_(None),
    runs.c.resume_at.is_not(None),
)


def due_waiting_runs(conn: Connection, *, now: datetime) -> list[int]:
    """Ids of the waiting runs whose earliest retry is due at `now`, the longest-waiting first."""
    rows = conn.execute(
        sa.select(runs.c.id)
        .where(WAITING_RUN, runs.c.resume_at <= now)
        .order_by(runs.c.resume_at, runs.c.id)
    )
    return [int(run_id) for (run_id,) in rows]


def claim_waiting_run(
    conn: Connection, run_id: int, *, worker_id: str, due_at: datetime, now: datetime
) -> bool:
    """Take a waiting run whose retry is due at `due_at` for this worker (heartbeat `now`);
    False when another executor was first or it is no longer waiting and due."""
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, WAITING_RUN, runs.c.resume_at <= due_at)
        .values(worker_id=worker_id, heartbeat_at=now, resume_at=None)
    )
    return result.rowcount == 1
