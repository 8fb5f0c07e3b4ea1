"""Clocks that move only when a test (or a wait) moves them.

`FakeClock` is for token buckets and rate windows (seconds, moved by what sleeps on it);
`HandClock` is a `Clock` for the sending stages and the daemon (aware datetimes, moved by
the test).
"""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """Pass `clock` and `sleep` where the code takes them; `sleeps` lists every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class HandClock:
    """A `Clock` (call it for the time) that stands still until `advance` or `now` moves it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a Clock tells timezone-aware time")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock on by a timedelta's keywords (`minutes=2`)."""
        self.now += timedelta(**delta)
