"""The hand-off point: each delivery marked in flight, committed, right before its message goes
to the engine.

A batch is claimed in one transaction and sent `concurrency` messages at a time. So that a
crash makes `unknown` only what may have gone out, each message is marked (`handed_at`, and the
Message-ID it carries, which a resend reuses) and committed just before its engine call; that
transaction also records the outcomes that ended since the previous one, and the batch's
record writes the rest.

Hand-offs that come while a transaction is being written wait for the next one and share it
(group commit), written so the sends in flight go on meanwhile (`hand_off_writes`: one
statement on an asynchronous connection on PostgreSQL, a thread on SQLite). One transaction
at a time, each taking the outcomes ended so far when it starts: so at any moment the
deliveries handed over but not recorded are those not yet ended when the last committed one
started, and each of those held a concurrency slot then: at most the run's concurrency.
The claimed deliveries never handed go back to pending after a crash (`in_flight.settle`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from outreach_core.adapters.store.hand_off_writes import hand_off_writer
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock
from outreach_core.domain.message import Outgoing


class NotHanded(Exception):
    """The delivery is no longer this worker's `sending` row (a take-over settled it): its
    message was not handed over, and must not be."""


class HandOffs:
    """One worker's hand-offs for one run, and the outcomes not yet in the ledger."""

    def __init__(self, ws: Workspace, worker_id: str, clock: Clock) -> None:
        self._worker_id = worker_id
        self._clock = clock
        self._ended: list[dict[str, Any]] = []
        self._waiting: list[tuple[int, str, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._store = hand_off_writer(ws.db, worker_id)

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
                # a sender cancelled while it waited sends nothing: its row is not marked
                waiting = [entry for entry in waiting if not entry[2].cancelled()]
                ended = self.take_ended()
                marks = [(delivery_id, message_id) for delivery_id, message_id, _ in waiting]
                try:
                    # shielded: a cancelled run still gets the write it began (the outcomes
                    # it took are in no other), as a thread would finish it
                    refused = await asyncio.shield(
                        self._store.write(ended, marks, now=self._clock())
                    )
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

    async def close(self) -> None:
        """Let the writes' connection go (once the run's sends are over)."""
        await self._store.close()
