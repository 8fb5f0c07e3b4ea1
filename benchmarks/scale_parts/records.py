"""What the sink's records say: deliveries received more than once, and the busiest window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path


def read_records(files: Iterable[Path]) -> list[tuple[float, str]]:
    """(time, delivery id) of every message the sink processes recorded, oldest first."""
    found = []
    for path in files:
        if path.exists():
            for line in path.read_text().splitlines():
                at, delivery, _ = line.split(" ", 2)
                found.append((float(at), delivery))
    return sorted(found)


def duplicates(records: list[tuple[float, str]]) -> int:
    """Messages beyond the first for the same delivery."""
    return sum(n - 1 for n in Counter(delivery for _, delivery in records).values())


def busiest_window(times: list[float], seconds: float) -> int:
    """The most messages received within any `seconds`-long window (sliding: every window
    starting at a message's arrival, which is where the maximum is reached)."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        best = max(best, end - start + 1)
    return best
