"""Rotation across engines, the UTC day bounds, the pause reasons and the per-domain window."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from outreach_core.domain.engine_rotation import (
    EngineSlot,
    assign_engines,
    capacity,
    choose_engine,
    engine_error_reason,
    next_utc_midnight,
    quota_pause_reason,
    utc_day_start,
)
from outreach_core.domain.models import Engine, EngineLimits
from outreach_core.domain.ratelimit import DomainWindow
from outreach_core.services.sending.lanes import EngineLane
from tests.fake_clock import FakeClock


def slot(engine_id: int, quota: int | None, used: int = 0, error: str | None = None) -> EngineSlot:
    return EngineSlot(
        engine_id=engine_id,
        name=f"e{engine_id}",
        position=engine_id,
        daily_quota=quota,
        used_today=used,
        error=error,
    )


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        # most quota left wins
        ([slot(1, 10, used=5), slot(2, 10, used=2)], 2),
        # a tie goes to the engine listed first
        ([slot(1, 10, used=3), slot(2, 10, used=3)], 1),
        # the same quota left: the engine that sent fewer today wins, whatever its position
        ([slot(1, 20, used=10), slot(2, 10, used=0)], 2),
        # all unlimited: the engine that sent fewer today wins, then the one listed first
        ([slot(1, None, used=4), slot(2, None, used=3)], 2),
        ([slot(1, None, used=3), slot(2, None, used=3)], 1),
        # an engine without quota counts as unlimited
        ([slot(1, 1000), slot(2, None, used=5000)], 2),
        # an exhausted engine is passed over, whatever its position
        ([slot(1, 5, used=5), slot(2, 3, used=2)], 2),
        # an engine with an error is out of rotation
        ([slot(1, None, error="auth failed"), slot(2, 3)], 2),
        # nothing usable: None
        ([slot(1, 5, used=5), slot(2, None, error="auth failed")], None),
    ],
)
def test_choose_engine_takes_most_remaining_quota_then_fewest_sends_then_workflow_order(
    slots: list[EngineSlot], expected: int | None
) -> None:
    """Verify the choice: most remaining quota, unlimited first, ties by fewest sends today then
    by position, skip unusable."""
    chosen = choose_engine(slots)
    assert (chosen.engine_id if chosen else None) == expected


def test_assign_engines_splits_by_quota_and_stops_when_all_are_used() -> None:
    """Verify 80 sends over quotas 30 and 20 give 30/20 and stop after 50."""
    chosen = assign_engines([slot(1, 30), slot(2, 20)], 80)

    assert Counter(chosen) == {1: 30, 2: 20}
    # engine 1 alone until both have 20 left, then they alternate (the tie at 20 left goes to
    # engine 2, which has sent fewer)
    assert chosen[:10] == [1] * 10
    assert chosen[10:14] == [2, 1, 2, 1]


def test_assign_engines_spreads_sends_over_engines_without_quota() -> None:
    """Verify two unlimited engines split 10 sends 5/5, taking turns, and today's earlier sends
    count: the engine that sent less catches up first."""
    chosen = assign_engines([slot(1, None), slot(2, None)], 10)
    assert Counter(chosen) == {1: 5, 2: 5}
    assert chosen == [1, 2] * 5

    assert assign_engines([slot(1, None, used=3), slot(2, None)], 5) == [2, 2, 2, 1, 2]


def test_assign_engines_still_prefers_the_unlimited_engine_and_the_most_quota_left() -> None:
    """Verify the fewest-sends tie-break never overrides remaining quota: an unlimited engine takes
    every send before a limited one however much it sent, and the larger quota left goes first."""
    assert assign_engines([slot(1, 100), slot(2, None, used=5000)], 4) == [2, 2, 2, 2]
    assert assign_engines([slot(1, 10, used=0), slot(2, 50, used=30)], 4) == [2, 2, 2, 2]


def test_assign_engines_counts_what_the_ledger_already_used() -> None:
    """Verify today's use from the ledger lowers what an engine is given."""
    chosen = assign_engines([slot(1, 30, used=28), slot(2, 20, used=20), slot(3, None)], 5)
    # engine 3 is unlimited, so it takes everything while it is usable
    assert chosen == [3, 3, 3, 3, 3]
    assert assign_engines([slot(1, 30, used=28), slot(2, 20, used=20)], 5) == [1, 1]


def test_capacity_is_the_sum_of_quota_left_or_none_when_unlimited() -> None:
    """Verify capacity sums the usable engines' remaining quota; an unlimited one makes it None."""
    assert capacity([slot(1, 30, used=10), slot(2, 20, used=25)]) == 20
    assert capacity([slot(1, 30, error="x"), slot(2, 20, used=5)]) == 15
    assert capacity([slot(1, 30), slot(2, None)]) is None
    assert capacity([slot(1, None, error="x")]) == 0


def test_day_bounds_are_utc_midnights() -> None:
    """Verify the quota day starts at UTC midnight and renews at the next one."""
    late = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    assert utc_day_start(late) == datetime(2026, 11, 29, tzinfo=UTC)
    assert next_utc_midnight(late) == datetime(2026, 11, 30, tzinfo=UTC)
    assert next_utc_midnight(datetime(2026, 12, 31, 0, 0, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )


def test_quota_pause_reason_names_each_engine_and_the_resume_time() -> None:
    """Verify the pause reason reads like the spec: each engine's use and when it resumes."""
    slots = [
        EngineSlot(1, "a", 0, daily_quota=250, used_today=250),
        EngineSlot(2, "b", 1, daily_quota=250, used_today=250),
    ]
    reason = quota_pause_reason(slots, resume_at=datetime(2026, 11, 30, tzinfo=UTC))
    assert reason == (
        "daily quota reached on all engines (a: 250/250, b: 250/250); "
        "resumes at 2026-11-30 00:00 UTC"
    )


def test_engine_error_reason_names_each_engines_error() -> None:
    """Verify one engine keeps the plain form and several name each engine's error."""
    one = [EngineSlot(1, "a", 0, error="smtp 127.0.0.1:25: authentication failed (535)")]
    assert (
        engine_error_reason(one) == "engine error: smtp 127.0.0.1:25: authentication failed (535)"
    )
    two = [*one, EngineSlot(2, "b", 1, error="sendgrid: 401 bad key")]
    assert engine_error_reason(two) == (
        "engine error on every engine (a: smtp 127.0.0.1:25: authentication failed (535); "
        "b: sendgrid: 401 bad key)"
    )


def test_domain_window_allows_n_per_minute_to_one_domain_and_others_freely() -> None:
    """Verify 3 per minute: the 4th send to a domain waits until the first leaves the window,
    while another domain is not held back."""
    fake = FakeClock()
    window = DomainWindow(3, clock=fake.clock, sleep=fake.sleep)

    assert [window.try_take("gmail.com") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.try_take("GMAIL.com") == pytest.approx(60.0)
    assert window.try_take("example.org") == 0.0
    fake.now = 20.0
    assert window.try_take("gmail.com") == pytest.approx(40.0)
    fake.now = 60.0
    assert window.try_take("gmail.com") == 0.0


def test_domain_window_spaces_sends_so_no_minute_holds_more_than_n() -> None:
    """Verify 10 sends to one domain at 3/min start at 0,0,0,60,60,60,120,... of clock time."""
    fake = FakeClock()
    window = DomainWindow(3, clock=fake.clock, sleep=fake.sleep)

    async def go() -> list[float]:
        stamps = []
        for _ in range(10):
            await window.acquire("gmail.com")
            stamps.append(fake.now)
        return stamps

    stamps = asyncio.run(go())
    assert stamps == [0, 0, 0, 60, 60, 60, 120, 120, 120, 180]
    for start in stamps:
        assert sum(1 for t in stamps if start <= t < start + 60) <= 3


def test_domain_window_refuses_a_rate_below_one() -> None:
    """Verify a per-minute rate of 0 is refused with a message saying what to give."""
    with pytest.raises(ValueError, match="at least 1 per minute"):
        DomainWindow(0)


def lane(limits: EngineLimits) -> EngineLane:
    engine = Engine(
        id=7, name="m", kind="smtp", display_url="smtp://h", from_email="m@example.com",
        from_name="M", limits=limits,
    )  # fmt: skip
    # the limits are kept in a database, asked only once a send waits: never here
    return EngineLane.for_engine(
        engine, 2, sender=None, db=sa.create_engine("sqlite://"), holder="w"
    )


def test_lane_takes_its_limits_from_the_engine() -> None:
    """Verify the lane's bucket, semaphore and domain window follow the engine's limits, and an
    engine without limits gets none (unlimited bucket, no semaphore, no window)."""
    limited = lane(
        EngineLimits(rate_per_second=2.5, burst=4, max_concurrency=3, per_domain_per_minute=5)
    )
    assert (limited.bucket.rate, limited.bucket.burst) == (2.5, 4)
    assert limited.bucket.bucket == "engine 7"
    assert limited.slots is not None and limited.slots.limit == 3
    assert limited.domains is not None and limited.domains.per_minute == 5
    assert lane(EngineLimits(rate_per_second=25)).bucket.burst == 3  # a tenth of a second's worth
    assert lane(EngineLimits(rate_per_second=2.5)).bucket.burst == 1

    free = lane(EngineLimits())
    assert free.bucket.rate == 0 and free.slots is None and free.domains is None
    assert free.slot() == EngineSlot(engine_id=7, name="m", position=2, daily_quota=None)
