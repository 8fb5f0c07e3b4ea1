"""A clock for token buckets and rate windows that moves only when something sleeps on it."""

from __future__ import annotations


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
