"""Rate limiting within one process: a token bucket (rate per second plus burst) and a
per-domain sliding window. The executor's limits are shared by every process instead
(`gcra`, `services/sending/shared_limits`)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Allows `burst` sends at once, refilled at `rate` per second; rate 0 means unlimited.

    `try_take()` is the decision (take a token, or say how long until one is free);
    `acquire()` waits it out. Clock and sleep are injectable so tests run on fake time.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> float:
        """Take a token if one is free and return 0, else return the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        # The epsilon absorbs float rounding: after waiting exactly (1 - t) / rate the refill
        # can land a hair below 1, and a wait too small to move the clock would spin forever.
        if self._tokens >= 1 - 1e-9:
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is free, then take it."""
        if self.rate <= 0:  # unlimited: no lock on the hot path
            return
        async with self._lock:
            while (wait := self.try_take()) > 0:
                await self._sleep(wait)


class DomainWindow:
    """At most `per_minute` sends to one recipient domain in any 60 s of clock time.

    A sliding window per domain (the start times of its recent sends): exact, and small,
    because a domain's deque never holds more than `per_minute` entries. `try_take(domain)` is
    the decision; `acquire(domain)` waits it out. A waiting send holds nothing else, so a
    saturated domain never delays the others. Clock and sleep are injectable.
    """

    WINDOW_S = 60.0

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per-domain rate {per_minute}: give at least 1 per minute")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._starts: dict[str, deque[float]] = {}

    def try_take(self, domain: str) -> float:
        """Record a send to `domain` and return 0 if the window has room, else the seconds
        until its oldest send leaves the window."""
        now = self._clock()
        starts = self._starts.setdefault(domain.lower(), deque())
        while starts and now - starts[0] >= self.WINDOW_S:
            starts.popleft()
        if len(starts) < self.per_minute:
            starts.append(now)
            return 0.0
        return starts[0] + self.WINDOW_S - now

    async def acquire(self, domain: str) -> None:
        """Wait until `domain` has room in its window, then take a place in it."""
        while (wait := self.try_take(domain)) > 0:
            await self._sleep(wait)
