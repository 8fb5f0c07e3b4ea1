"""The hand-off transaction's writes: the outcomes ended since the last one, and the marks of
the deliveries about to go to their engine; and the connection each backend writes them on.

On PostgreSQL both are one statement over arrays (two data-modifying CTEs over `unnest`):
one round trip and one plan for any number of rows, where two `executemany` run a statement
per row. A statement is atomic on its own, so it runs in autocommit, without BEGIN nor
COMMIT, on a connection of psycopg's own driven by the event loop (`PostgresHandOffWriter`):
the sends go on while it waits for the server, and no write waits for a thread to take the
interpreter lock. SQLite writes the two `executemany` in a transaction, in a thread
(`ThreadedHandOffWriter`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from outreach_core.adapters.store import deliveries, in_flight
from outreach_core.domain.states import DeliveryStatus

#: seconds a threaded writer's connection may stay unused and still be written on without the
#: pool's ping: past them (a pause, a send window's night) the next write checks one out anew
KEEP_CONNECTION_S = 5.0

#: each outcome column, its key in `deliveries.outcome_params` and its PostgreSQL array type
_OUTCOME_ARRAYS = (
    ("id", "b_id", "integer"),
    ("status", "b_status", "varchar"),
    ("reason", "b_reason", "text"),
    ("attempts", "b_attempts", "integer"),
    ("at", "b_now", "timestamptz"),
    ("sent_at", "b_sent_at", "timestamptz"),
    ("message_id", "b_message_id", "varchar"),
    ("provider_message_id", "b_provider_message_id", "varchar"),
    ("error_kind", "b_error_kind", "varchar"),
    ("reply_code", "b_reply_code", "integer"),
    ("latency_ms", "b_latency_ms", "integer"),
    ("deferred_since", "b_deferred_since", "timestamptz"),
    ("next_attempt_at", "b_next_attempt_at", "timestamptz"),
)

_SENDING = f"d.status || '' = '{DeliveryStatus.SENDING.value}'"  # a guard: see status_is

_WRITE_HAND_OFF = sa.text(
    f"""
WITH recorded AS (
    UPDATE deliveries AS d SET
        status = o.status,
        reason = coalesce(o.reason, d.reason),
        attempts = d.attempts + o.attempts,
        updated_at = o.at,
        sent_at = o.sent_at,
        message_id = coalesce(o.message_id, d.message_id),
        provider_message_id = o.provider_message_id,
        error_kind = o.error_kind,
        reply_code = o.reply_code,
        latency_ms = o.latency_ms,
        deferred_since = coalesce(d.deferred_since, o.deferred_since),
        next_attempt_at = o.next_attempt_at
    FROM unnest({", ".join(f"CAST(:o_{name} AS {kind}[])" for name, _, kind in _OUTCOME_ARRAYS)})
        AS o({", ".join(name for name, _, _ in _OUTCOME_ARRAYS)})
    WHERE d.id = o.id AND {_SENDING}
    RETURNING d.id
), handed AS (
    UPDATE deliveries AS d SET handed_at = :h_now, message_id = h.message_id
    FROM unnest(CAST(:h_id AS integer[]), CAST(:h_message_id AS varchar[])) AS h(id, message_id)
    WHERE d.id = h.id AND {_SENDING} AND d.claimed_by = :h_worker
    RETURNING d.id
)
SELECT id FROM handed
"""
)


def _array_params(
    outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], *, worker_id: str, now: datetime
) -> dict[str, Any]:
    """The statement's arrays: one per outcome column, and the marks' ids and Message-IDs."""
    rows = deliveries.outcome_params(outcomes, now=now)
    params: dict[str, Any] = {
        f"o_{name}": [_plain(row[key]) for row in rows] for name, key, _ in _OUTCOME_ARRAYS
    }
    return params | {
        "h_id": [delivery_id for delivery_id, _ in marks],
        "h_message_id": [message_id for _, message_id in marks],
        "h_now": now,
        "h_worker": worker_id,
    }


def _refused(marks: list[tuple[int, str]], handed: Iterable[int]) -> set[int]:
    return {delivery_id for delivery_id, _ in marks} - set(handed)


def _plain(value: Any) -> Any:
    """An array element as the driver adapts it: an enum by its value."""
    return value.value if isinstance(value, DeliveryStatus) else value


class HandOffWriter(Protocol):
    """Where one worker's hand-off transactions go, one at a time."""

    async def write(
        self, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], *, now: datetime
    ) -> set[int]:
        """Record the outcomes and mark the hand-offs, committed; the ids of the marks refused
        (no longer this worker's `sending` rows)."""
        ...

    async def close(self) -> None:
        """Let the connection go (once the run's sends are over)."""
        ...


def hand_off_writer(engine: Engine, worker_id: str) -> HandOffWriter:
    """The writer for the engine's backend."""
    if engine.dialect.name == "postgresql":
        return PostgresHandOffWriter(engine, worker_id)
    return ThreadedHandOffWriter(engine, worker_id)


class PostgresHandOffWriter:
    """The one statement on a psycopg AsyncConnection of its own, in autocommit, kept while the
    run sends (no pool, so no ping round trip before each write)."""

    def __init__(self, engine: Engine, worker_id: str) -> None:
        self._engine = engine
        self._worker_id = worker_id
        self._sql = str(_WRITE_HAND_OFF.compile(dialect=engine.dialect))
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._busy = asyncio.Lock()  # a write, or close() waiting for it to end

    async def write(
        self, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], *, now: datetime
    ) -> set[int]:
        async with self._busy:
            return await self._write(outcomes, marks, now)

    async def _write(
        self, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], now: datetime
    ) -> set[int]:
        params = _array_params(outcomes, marks, worker_id=self._worker_id, now=now)
        kept = self._conn is not None
        try:
            return _refused(marks, await self._execute(params))
        except psycopg.Error as exc:
            broken = await self._drop()
            if not (kept and broken):
                raise self._wrapped(exc, broken) from exc
        # the kept connection was gone (a server restart, a backend ended): once more on a new
        # one. Safe to repeat: only `sending` rows change, to the same values, whether or not
        # the lost statement had committed
        try:
            return _refused(marks, await self._execute(params))
        except psycopg.Error as exc:
            raise self._wrapped(exc, await self._drop()) from exc

    async def _execute(self, params: dict[str, Any]) -> list[int]:
        if self._conn is None:
            args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
            self._conn = await psycopg.AsyncConnection.connect(*args, **kwargs, autocommit=True)
        cursor = await self._conn.execute(self._sql, params)
        return [row[0] for row in await cursor.fetchall()]

    async def _drop(self) -> bool:
        """Close the connection after a failed write (the next one opens a new one); whether
        it was broken (the server gone, not the statement refused)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return True
        broken = conn.broken
        await conn.close()
        return broken

    def _wrapped(self, exc: psycopg.Error, broken: bool) -> BaseException:
        """The driver's error as SQLAlchemy raises it (OperationalError for a lost server…):
        what the executor tells transient from the run's own, as for every other statement."""
        return sa.exc.DBAPIError.instance(
            self._sql, None, exc, psycopg.Error, hide_parameters=True, connection_invalidated=broken
        )

    async def close(self) -> None:
        async with self._busy:  # a write still running (a cancelled run's) finishes first
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()


class ThreadedHandOffWriter:
    """The outcomes (`deliveries.record_outcomes`) and the marks (`in_flight.mark_handed_many`)
    in one transaction run in a thread (so the sends in flight go on), on a
    connection kept while the writes follow each other closely: a checkout from the pool
    pings the server first, a round trip as long as the commit itself."""

    def __init__(self, engine: Engine, worker_id: str) -> None:
        self._engine = engine
        self._worker_id = worker_id
        self._conn: Connection | None = None
        self._conn_used_at = 0.0
        self._conn_lock = threading.Lock()  # a write's thread, or close()

    async def write(
        self, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], *, now: datetime
    ) -> set[int]:
        return await asyncio.to_thread(self._write, outcomes, marks, now)

    def _write(
        self, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], now: datetime
    ) -> set[int]:
        with self._conn_lock:
            kept = self._conn is not None and not self._idle_too_long()
            try:
                return self._write_on(self._connection(), outcomes, marks, now)
            except DBAPIError as exc:
                if not (kept and exc.connection_invalidated):
                    raise
            # the kept connection was gone: once more on one the pool pings first (safe to
            # repeat, as above)
            return self._write_on(self._connection(), outcomes, marks, now)

    def _write_on(
        self,
        conn: Connection,
        outcomes: list[dict[str, Any]],
        marks: list[tuple[int, str]],
        now: datetime,
    ) -> set[int]:
        try:
            with conn.begin():
                deliveries.record_outcomes(conn, outcomes, now=now)
                refused = in_flight.mark_handed_many(
                    conn, marks, worker_id=self._worker_id, now=now
                )
        except Exception:
            self._drop_connection()  # the next transaction starts on a fresh one
            raise
        self._conn_used_at = time.monotonic()
        return refused

    def _idle_too_long(self) -> bool:
        return time.monotonic() - self._conn_used_at > KEEP_CONNECTION_S

    def _connection(self) -> Connection:
        """The kept connection, or (none kept, or unused too long) a new one from the pool."""
        if self._conn is not None and self._idle_too_long():
            self._drop_connection()
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        with self._conn_lock:  # a write still in its thread finishes first
            self._drop_connection()
