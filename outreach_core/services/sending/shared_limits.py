"""The limits a sending process shares with every other: rate, per-domain pace, concurrency.

Each is kept in the database (`adapters/store/shared_limits.py`), so the daemons of several
machines sending through one engine, or helping one run, hold its limits together rather
than each holding all of it. The database is asked a few times a second, not per message:

- a rate (`SharedBucket`) is taken in small batches, as many tokens as this process has sends
  waiting (at most a tenth of a second's worth, the burst, or 10: `gcra.take_size`), spent
  here at once; a token unspent for HOLD_S is dropped, so none is spent long after it was
  granted. A token is counted when granted: a process that dies holding some only leaves the
  others less, never more.
- a concurrency limit (`SharedSlots`) is leased slot by slot as sends need them, kept for the
  batch and given back at its end (so the other processes get their turn), renewed every
  LEASE_TTL_S / 3 meanwhile. A killed process's slots lapse LEASE_TTL_S after its last renewal.

A limit that is not set costs nothing: rate 0 never touches the database, and a lane without
a concurrency or per-domain limit has no such object at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Engine as Database

from outreach_core.adapters.store import shared_limits
from outreach_core.domain import gcra
from outreach_core.domain.gcra import Grant

log = logging.getLogger("outreach.executor")

#: seconds a granted token may wait here to be spent before it is dropped
HOLD_S = 1.0
#: seconds a concurrency lease lasts unless renewed: what a killed process's slots are lost for
LEASE_TTL_S = 30.0
#: seconds between two asks for a slot while every slot is leased
LEASE_POLL_S = 0.1

Sleep = Callable[[float], Awaitable[None]]


class SharedBucket:
    """A rate limit (per second, with burst) every process taking from `bucket` shares.

    `clock` (seconds) is for tests on an injected clock; None takes the database's, one clock
    for every machine. Rate 0 is no limit, without a database round trip.
    """

    def __init__(
        self,
        db: Database,
        bucket: str,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.db = db
        self.bucket = bucket
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0
        self._granted_at = 0.0
        self._waiting = 0
        self._lock = asyncio.Lock()
        #: round trips to the database (for logs and tests)
        self.takes = 0

    def _take(self, wanted: int) -> Grant:
        now = self._clock() if self._clock is not None else None
        with self.db.begin() as conn:
            return shared_limits.take_tokens(
                conn, self.bucket, rate=self.rate, burst=self.burst, wanted=wanted, now=now
            )

    async def acquire(self) -> None:
        """Wait until this process holds a token of the shared limit, then spend it."""
        if self.rate <= 0:  # unlimited: no lock, no database
            return
        self._waiting += 1
        try:
            async with self._lock:  # one ask at a time; the sends queued behind share its grant
                if self._tokens and time.monotonic() - self._granted_at > HOLD_S:
                    self._tokens = 0  # stale: spending them now could beat the window's bound
                while not self._tokens:
                    wanted = gcra.take_size(self.rate, self.burst, waiting=self._waiting)
                    grant = await asyncio.to_thread(self._take, wanted)
                    self.takes += 1
                    if grant.granted:
                        self._tokens, self._granted_at = grant.granted, time.monotonic()
                        break
                    await self._sleep(grant.wait)
                self._tokens -= 1
        finally:
            self._waiting -= 1


class SharedDomains:
    """An engine's per-recipient-domain limit, one shared pace per domain (`gcra.domain_pace`:
    at most `per_minute` in any 60 s, evenly spaced). A send waiting for its domain holds no
    concurrency slot and no token, so a saturated domain never delays the others."""

    def __init__(
        self,
        db: Database,
        engine_id: int,
        per_minute: int,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate, self.burst = gcra.domain_pace(per_minute)
        self.per_minute = per_minute
        self._make = lambda key: SharedBucket(
            db, f"engine {engine_id} domain {key}", self.rate, self.burst, clock=clock, sleep=sleep
        )
        self._buckets: dict[str, SharedBucket] = {}

    async def acquire(self, domain: str) -> None:
        """Wait until `domain` has room in its shared window, then take a place in it."""
        key = domain.lower()[:255]
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = self._make(key)
        await bucket.acquire()


class SharedSlots:
    """An engine's max_concurrency held across processes: `async with slots:` around a send.

    Slots are leased from the database as sends wait for them and kept while this process
    sends; `release_idle()` (at the end of each batch) gives back those no send uses, `close()`
    all of them. Leases are renewed every ttl_s / 3 while held.
    """

    def __init__(
        self,
        db: Database,
        engine_id: int,
        limit: int,
        *,
        holder: str,
        ttl_s: float = LEASE_TTL_S,
        poll_s: float = LEASE_POLL_S,
    ) -> None:
        self.db = db
        self.engine_id = engine_id
        self.limit = limit
        # one holder per lane: two runs a process sends at once hold their leases apart
        self.holder = f"{holder[:180]}/{uuid.uuid4().hex[:8]}"
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.held: list[int] = []
        self.in_use = 0
        self._waiting = 0
        self._created = False
        self._lock = asyncio.Lock()
        self._freed = asyncio.Event()
        self._renewer: asyncio.Task[None] | None = None

    def _lease(self, wanted: int) -> list[int]:
        with self.db.begin() as conn:
            if not self._created:
                shared_limits.ensure_slots(conn, self.engine_id, self.limit)
                self._created = True
            return shared_limits.lease_slots(
                conn,
                self.engine_id,
                holder=self.holder,
                limit=self.limit,
                wanted=wanted,
                ttl_s=self.ttl_s,
            )

    def _release(self, slots: list[int]) -> None:
        with self.db.begin() as conn:
            shared_limits.release_leases(conn, self.engine_id, holder=self.holder, slots=slots)

    async def acquire(self) -> None:
        """Wait until this process holds a slot no send of its own uses, then use it."""
        self._waiting += 1
        try:
            async with self._lock:
                while self.in_use >= len(self.held):
                    wanted = min(self._waiting, self.limit - len(self.held))
                    got = await asyncio.to_thread(self._lease, max(1, wanted)) if wanted else []
                    if got:
                        self.held.extend(got)
                        self._start_renewing()
                        break
                    # every slot leased: one of ours coming free, or the next ask, whichever first
                    self._freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), self.poll_s)
                self.in_use += 1
        finally:
            self._waiting -= 1

    def release(self) -> None:
        """A send is done with its slot (the lease stays this process's until given back)."""
        self.in_use -= 1
        self._freed.set()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    async def release_idle(self) -> None:
        """Give back the leases no send of this process uses now."""
        idle = len(self.held) - max(0, self.in_use)
        if idle <= 0:
            return
        giving, self.held = self.held[-idle:], self.held[:-idle]
        await asyncio.to_thread(self._release, giving)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew(), name=f"lease renewal {self.holder}"
            )

    async def _renew(self) -> None:
        """Renew the held leases every ttl_s / 3 until none is held. A lease found lapsed and
        taken by another process (this one stalled past the TTL) is let go of."""
        while self.held:
            await asyncio.sleep(self.ttl_s / 3)
            asking = list(self.held)
            try:
                kept = await asyncio.to_thread(self._renew_once, asking)
            except Exception as exc:  # the next round tries again; the leases may lapse meanwhile
                log.warning("engine %s: leases not renewed: %s", self.engine_id, exc)
                continue
            lost = set(asking) - set(kept)
            if lost:
                log.warning("engine %s: leases %s lapsed and were lost", self.engine_id, lost)
                self.held = [slot for slot in self.held if slot not in lost]

    def _renew_once(self, slots: list[int]) -> list[int]:
        with self.db.begin() as conn:
            return shared_limits.renew_leases(
                conn, self.engine_id, holder=self.holder, slots=slots, ttl_s=self.ttl_s
            )

    async def close(self) -> None:
        """Stop renewing and give every lease back."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        giving, self.held = self.held, []
        if giving:
            await asyncio.to_thread(self._release, giving)
