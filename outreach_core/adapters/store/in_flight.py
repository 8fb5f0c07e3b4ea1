"""Deliveries in flight: each marked when its message is handed to the engine, and what becomes
of them when their executor is gone.

A batch is claimed together (`sending`), but its messages go out a few at a time. Right before
one goes to its engine, its row gets `handed_at` and the Message-ID the message carries, in a
short transaction of its own (`mark_handed`). So after a crash the ledger tells the two apart
(`settle`): a handed delivery may have gone out and becomes `unknown`, never resent unless a
person asks (the resend then carries the same Message-ID); a claimed one never handed goes
back to `pending` and is sent later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.deliveries import INTERRUPTED_REASON, status_is
from outreach_core.adapters.store.tables import deliveries, runs
from outreach_core.domain.states import DeliveryStatus, RunStatus, check_delivery_transition

#: one prepared statement per hand-off: the row by its key, only while this worker holds it
_HAND_OFF = (
    deliveries.update()
    .where(
        deliveries.c.id == sa.bindparam("h_id"),
        status_is(DeliveryStatus.SENDING),
        deliveries.c.claimed_by == sa.bindparam("h_worker"),
    )
    .values(handed_at=sa.bindparam("h_now"), message_id=sa.bindparam("h_message_id"))
)


def mark_handed(
    conn: Connection, delivery_id: int, *, worker_id: str, message_id: str, now: datetime
) -> bool:
    """Mark a claimed delivery as handed to its engine, with the Message-ID its message
    carries, in the caller's transaction, which commits before the engine is called.

    False when the delivery is no longer this worker's `sending` row (a take-over settled it
    meanwhile, and another worker may hold it now): its message must not go out.
    """
    params = {"h_id": delivery_id, "h_worker": worker_id, "h_now": now, "h_message_id": message_id}
    return conn.execute(_HAND_OFF, params).rowcount == 1


def mark_handed_many(
    conn: Connection, marks: list[tuple[int, str]], *, worker_id: str, now: datetime
) -> set[int]:
    """`mark_handed` for several deliveries (id, Message-ID) in one statement; the ids refused.

    When fewer rows changed than asked (or the driver cannot tell), the rows this worker still
    holds say which were marked: a refused row is no longer `sending`, or is another's.
    """
    if not marks:
        return set()
    params = [
        {"h_id": delivery_id, "h_worker": worker_id, "h_now": now, "h_message_id": message_id}
        for delivery_id, message_id in marks
    ]
    if conn.execute(_HAND_OFF, params).rowcount == len(marks):
        return set()
    ids = [delivery_id for delivery_id, _ in marks]
    held = conn.execute(
        sa.select(deliveries.c.id).where(
            deliveries.c.id.in_(ids),
            status_is(DeliveryStatus.SENDING),
            deliveries.c.claimed_by == worker_id,
        )
    ).scalars()
    return set(ids) - set(held)


def settle(
    conn: Connection, run_id: int, *, now: datetime, holder: sa.ColumnElement[bool] | None = None
) -> int:
    """The `sending` deliveries of the run (of `holder` only, when given) whose executor is
    gone: those handed to their engine become `unknown`, deliberately not resent (they may have
    gone out); those claimed but never handed go back to `pending` and are sent later
    (`cancelled` when the run was cancelled meanwhile). Returns how many became unknown.
    """
    check_delivery_transition(DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)
    lock_runs(conn, [run_id])
    in_flight = [deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.SENDING]
    if holder is not None:
        in_flight.append(holder)
    unknown = conn.execute(
        deliveries.update()
        .where(*in_flight, deliveries.c.handed_at.is_not(None))
        .values(status=DeliveryStatus.UNKNOWN, reason=INTERRUPTED_REASON, updated_at=now)
    ).rowcount
    conn.execute(
        deliveries.update()
        .where(*in_flight, deliveries.c.handed_at.is_(None))
        .values(**back_to_pending(now))
    )
    return unknown


def back_to_pending(now: datetime) -> dict[str, Any]:
    """The values that put claimed deliveries not handed to an engine back to `pending`, or
    make them `cancelled` with their run's reason when it was cancelled meanwhile: the cancel
    marked the run's pending rows, and these were `sending` then.

    The caller locks the runs first (`lock_runs`), so a cancel committing at the same moment
    either is seen here or, waiting on the lock, sees these rows pending afterwards: none is
    left pending in a cancelled run.
    """
    run_of_row = sa.select(runs.c.status, runs.c.status_reason).where(
        runs.c.id == deliveries.c.run_id
    )
    cancelled = run_of_row.with_only_columns(runs.c.status).scalar_subquery() == str(
        RunStatus.CANCELLED
    )
    run_reason = run_of_row.with_only_columns(runs.c.status_reason).scalar_subquery()
    return {
        "status": sa.case(
            (cancelled, str(DeliveryStatus.CANCELLED)), else_=str(DeliveryStatus.PENDING)
        ),
        "reason": sa.case((cancelled, run_reason), else_=deliveries.c.reason),
        "claimed_by": None,
        "engine_id": None,
        "sent_at": None,
        "handed_at": None,
        "updated_at": now,
    }


def lock_runs(conn: Connection, run_ids: list[int] | sa.Select[Any]) -> None:
    """Lock these runs until the transaction ends (PostgreSQL), the run before its deliveries:
    the order a cancel or a take-over locks them in. SQLite has one writer: the UPDATE that
    follows reads the run's state under the write lock, and a SELECT first would only open a
    read snapshot that a concurrent commit can make stale."""
    if conn.dialect.name == "sqlite":
        return
    conn.execute(
        sa.select(runs.c.id).where(runs.c.id.in_(run_ids)).order_by(runs.c.id).with_for_update()
    ).all()
