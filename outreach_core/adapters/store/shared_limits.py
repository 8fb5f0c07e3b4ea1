"""The limits every sending process shares, kept in the database: rate states and leases.

A rate take locks its state row, lets `domain/gcra.py` decide on the stored `tat` and the
database's time, and writes the new `tat`, all in the caller's short transaction: PostgreSQL
locks the one row (processes taking from other limits never wait), SQLite's first write takes
its one writer lock. Either way two takes of one limit never interleave.

Concurrency slots are rows (engine, slot) created up front; a lease is one UPDATE that takes
free or lapsed slots (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so processes leasing at once
never wait on each other) and stamps them with the holder and an expiry, which the holder
renews while it sends. A killed holder renews nothing: its slots come back when they lapse.

Times here are seconds since the epoch on the database's clock (`clock_timestamp()` on
PostgreSQL; on SQLite, one machine, the local clock), or the `now` a test passes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from outreach_core.adapters.store.tables import engine_leases, rate_limit_states
from outreach_core.domain import gcra
from outreach_core.domain.gcra import Grant


def _now(conn: Connection, now: float | None) -> ColumnElement[float]:
    """The time a statement decides on: `now` when given, else the database's clock.

    On SQLite the local clock is read when the statement is built, before its lock is taken:
    a time a little early only ever makes a lease look live or a token not yet free.
    """
    if now is not None:
        return sa.literal(now, sa.Float)
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return sa.literal(time.time(), sa.Float)


def _insert(conn: Connection):  # the dialect's insert, for ON CONFLICT
    return sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert


def _lock_state(conn: Connection, bucket: str, now: float | None) -> tuple[float, float] | None:
    """Lock the limit's row until the transaction ends: (its tat, the time now), or None when
    the limit has no row yet. A no-op UPDATE locks on both backends (a SELECT would not start
    SQLite's write transaction); on SQLite the time is read once the lock is held."""
    t = rate_limit_states
    returned = [t.c.tat]
    if now is None and conn.dialect.name == "postgresql":
        returned.append(_now(conn, None))
    row = conn.execute(
        t.update().where(t.c.bucket == bucket).values(tat=t.c.tat).returning(*returned)
    ).first()
    if row is None:
        return None
    if len(row) == 2:
        return float(row[0]), float(row[1])
    return float(row[0]), now if now is not None else time.time()


def take_tokens(
    conn: Connection, bucket: str, *, rate: float, burst: int, wanted: int, now: float | None = None
) -> Grant:
    """Take up to `wanted` tokens from the shared limit `bucket` (rate per second, burst), in
    the caller's transaction, which should be short: it holds the limit's lock."""
    locked = _lock_state(conn, bucket, now)
    if locked is None:
        # the first take of this limit anywhere: a row whose tat is long past is a full bucket
        stamp = datetime.now(UTC)
        conn.execute(
            _insert(conn)(rate_limit_states)
            .values(bucket=bucket, tat=0.0, updated_at=stamp)
            .on_conflict_do_nothing(index_elements=[rate_limit_states.c.bucket])
        )
        locked = _lock_state(conn, bucket, now)
        assert locked is not None  # inserted above, or by another process meanwhile
    tat, at = locked
    grant = gcra.take(tat, now=at, rate=rate, burst=burst, wanted=wanted)
    if grant.tat != tat:  # granted, or the state clamped after the clock went back
        conn.execute(
            rate_limit_states.update()
            .where(rate_limit_states.c.bucket == bucket)
            .values(tat=grant.tat, updated_at=datetime.fromtimestamp(at, UTC))
        )
    return grant


def prune_states(conn: Connection, *, idle_s: float = 3600.0, now: float | None = None) -> int:
    """Delete the rate states full for at least `idle_s` (a missing row reads the same: a
    full bucket); how many. Keeps the table to the limits in recent use (domains come and go)."""
    t = rate_limit_states
    return conn.execute(t.delete().where(t.c.tat < _now(conn, now) - idle_s)).rowcount


def ensure_slots(conn: Connection, engine_id: int, count: int) -> None:
    """Create the engine's slots 0..count-1 that do not exist yet (free)."""
    if count < 1:
        return
    rows = [{"engine_id": engine_id, "slot": slot} for slot in range(count)]
    conn.execute(
        _insert(conn)(engine_leases).on_conflict_do_nothing(
            index_elements=[engine_leases.c.engine_id, engine_leases.c.slot]
        ),
        rows,
    )


def _free(now: ColumnElement[float]) -> ColumnElement[bool]:
    t = engine_leases
    return sa.or_(t.c.holder.is_(None), t.c.expires_at <= now)


def lease_slots(
    conn: Connection,
    engine_id: int,
    *,
    holder: str,
    limit: int,
    wanted: int,
    ttl_s: float,
    now: float | None = None,
) -> list[int]:
    """Lease up to `wanted` of the engine's free (or lapsed) slots below `limit` to `holder`
    until ttl_s from now, in one statement; the slots leased (none when all are held).

    Slots at or above `limit` (left from a larger max_concurrency) are never leased, so a
    lowered limit holds once their leases end."""
    t = engine_leases
    at = _now(conn, now)
    free = (
        sa.select(t.c.slot)
        .where(t.c.engine_id == engine_id, t.c.slot < limit, _free(at))
        .order_by(t.c.slot)
        .limit(wanted)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        t.update()
        .where(t.c.engine_id == engine_id, t.c.slot.in_(free), _free(at))
        .values(holder=holder, expires_at=at + ttl_s)
        .returning(t.c.slot)
    ).all()
    return sorted(row.slot for row in rows)


def renew_leases(
    conn: Connection,
    engine_id: int,
    *,
    holder: str,
    slots: list[int],
    ttl_s: float,
    now: float | None = None,
) -> list[int]:
    """Move the holder's leases of `slots` on to ttl_s from now; the slots still its own.
    A slot that lapsed and went to another process is not renewed: the caller lets it go."""
    if not slots:
        return []
    t = engine_leases
    rows = conn.execute(
        t.update()
        .where(t.c.engine_id == engine_id, t.c.holder == holder, t.c.slot.in_(slots))
        .values(expires_at=_now(conn, now) + ttl_s)
        .returning(t.c.slot)
    ).all()
    return sorted(row.slot for row in rows)


def release_leases(conn: Connection, engine_id: int, *, holder: str, slots: list[int]) -> None:
    """Free the holder's leases of `slots` (those another process took after they lapsed are
    left alone)."""
    if not slots:
        return
    t = engine_leases
    conn.execute(
        t.update()
        .where(t.c.engine_id == engine_id, t.c.holder == holder, t.c.slot.in_(slots))
        .values(holder=None, expires_at=None)
    )


def live_leases(conn: Connection, engine_id: int, *, now: float | None = None) -> dict[int, str]:
    """The engine's slots leased now, with their holders."""
    t = engine_leases
    at = _now(conn, now)
    rows = conn.execute(
        sa.select(t.c.slot, t.c.holder).where(
            t.c.engine_id == engine_id, t.c.holder.is_not(None), t.c.expires_at > at
        )
    ).all()
    return {row.slot: row.holder for row in rows}
