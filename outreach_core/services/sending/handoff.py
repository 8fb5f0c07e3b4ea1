"""The hand-off point: each delivery marked in flight, committed, right before its message goes
to the engine.

A batch is claimed in one transaction and sent `concurrency` messages at a time. So that a
crash makes `unknown` only what may have gone out, each message is marked (`handed_at`, and the
Message-ID it carries, which a resend reuses) and committed just before its engine call; that
transaction also records the outcomes that ended since the previous one, and the batch's
record writes the rest.

Hand-offs that come while a transaction is being written wait for the next one and share it
(group commit), which runs in a thread so the sends in flight go on meanwhile. One transaction
at a time, each taking the outcomes ended so far when it starts: so at any moment the
deliveries handed over but not recorded are those not yet ended when the last committed one
started, and each of those held a concurrency slot then: at most the run's concurrency.
The transactions keep one connection while they follow each other closely: a checkout from
the pool pings the server first, a round trip as long as the commit itself. On PostgreSQL a
transaction is one statement (`hand_off_writes`) on that connection in autocommit: one round
trip, where BEGIN, two statements and COMMIT took four.
The claimed deliveries never handed go back to pending after a crash (`in_flight.settle`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from outreach_core.adapters.store import hand_off_writes
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock
from outreach_core.domain.message import Outgoing

#: seconds a hand-off connection may stay unused and still be written on without the pool's
#: ping: past them (a pause, a send window's night) the next transaction checks one out anew
KEEP_CONNECTION_S = 5.0


class NotHanded(Exception):
    """The delivery is no longer this worker's `sending` row (a take-over settled it): its
    message was not handed over, and must not be."""


class HandOffs:
    """One worker's hand-offs for one run, and the outcomes not yet in the ledger."""

    def __init__(self, ws: Workspace, worker_id: str, clock: Clock) -> None:
        self._ws = ws
        self._worker_id = worker_id
        self._clock = clock
        self._ended: list[dict[str, Any]] = []
        self._waiting: list[tuple[int, str, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._conn_used_at = 0.0
        self._conn_lock = threading.Lock()  # a write's thread, or close()

    def ended(self, row: dict[str, Any]) -> None:
        """An outcome (`Outcome.as_row()`) for the next transaction to record."""
        self._ended.append(row)

    def take_ended(self) -> list[dict[str, Any]]:
        """The outcomes no transaction has taken yet (the batch's record writes them)."""
        rows, self._ended = self._ended, []
        return rows

    async def hand_off(self, outgoing: Outgoing) -> None:
        """Return once the delivery is committed as handed to its engine, with its message's
        Message-ID. Raises NotHanded when it is no longer this worker's."""
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((outgoing.delivery_id, outgoing.message_id, handed))
        if self._writer is None:
            # starts on the next turn of the loop: hand-offs of this turn join its transaction
            self._writer = loop.create_task(self._write_all())
        if not await handed:
            raise NotHanded(f"delivery {outgoing.delivery_id} is no longer {self._worker_id}'s")

    async def _write_all(self) -> None:
        """One transaction after another while hand-offs wait."""
        waiting: list[tuple[int, str, asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                ended = self.take_ended()
                marks = [(delivery_id, message_id) for delivery_id, message_id, _ in waiting]
                try:
                    refused = await asyncio.to_thread(self._write, ended, marks, self._clock())
                except Exception as exc:
                    self._ended[:0] = ended  # not written: a later transaction writes them
                    for *_, handed in waiting:
                        handed.set_exception(exc)
                    continue
                for delivery_id, _, handed in waiting:
                    handed.set_result(delivery_id not in refused)
        finally:
            self._writer = None
            left, self._waiting = waiting + self._waiting, []
            for *_, handed in left:  # only when cancelled mid-write: their senders stop too
                if not handed.done():
                    handed.cancel()

    def _write(
        self, ended: list[dict[str, Any]], marks: list[tuple[int, str]], now: datetime
    ) -> set[int]:
        """The transaction: the ended outcomes, and each hand-off; the ids refused."""
        with self._conn_lock:
            kept = self._conn is not None and not self._idle_too_long()
            try:
                return self._write_on(self._connection(), ended, marks, now)
            except DBAPIError as exc:
                if not (kept and exc.connection_invalidated):
                    raise
            # the kept connection was gone (a server restart, a backend ended): once more on
            # one the pool pings first. Safe to repeat: only `sending` rows change, to the
            # same values, whether or not the lost transaction had committed
            return self._write_on(self._connection(), ended, marks, now)

    def _write_on(
        self,
        conn: Connection,
        ended: list[dict[str, Any]],
        marks: list[tuple[int, str]],
        now: datetime,
    ) -> set[int]:
        try:
            with conn.begin():
                refused = hand_off_writes.write_hand_off(
                    conn, ended, marks, worker_id=self._worker_id, now=now
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
            conn = self._ws.db.connect()
            if conn.dialect.name == "postgresql":
                # the hand-off is one statement there, atomic on its own (`write_hand_off`)
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Give the kept connection back to the pool (once the run's sends are over; a write
        still in its thread finishes first)."""
        with self._conn_lock:
            self._drop_connection()
