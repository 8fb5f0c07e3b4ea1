"""The clock: what time it is, as a function that can be passed in.

Decisions take `now` as an argument; the code that needs "the time now" at several moments
(the sending stages, the daemon's tick) takes a `Clock`, `utcnow` by default, so a test can
hand it a clock it moves by hand (`tests/fake_clock.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: a function returning the current time, timezone-aware
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware; the clock services use by default."""
    return datetime.now(UTC)
