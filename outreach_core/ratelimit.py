"""Rate limiting: a token bucket (rate per second plus burst)."""

from __future__ import annotations

import asyncio
import time
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
        async with self._lock:
            while (wait := self.try_take()) > 0:
                await self._sleep(wait)
