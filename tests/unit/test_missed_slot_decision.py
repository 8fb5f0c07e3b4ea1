"""The due decision names the slots it missed and what the policy did with them (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach_core.domain.cadence import (
    Cadence,
    CadenceKind,
    MissedAction,
    MissedSlotPolicy,
    decide_due,
    next_run_after,
)

NY = "America/New_York"
EVERY_MINUTE = Cadence(kind=CadenceKind.MINUTES, interval=1)
HOURLY = Cadence(kind=CadenceKind.HOURS, interval=1)
DAILY_9 = Cadence(kind=CadenceKind.DAILY, at="09:00")
NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def at(minute: int, second: int = 0) -> datetime:
    return NOON + timedelta(minutes=minute, seconds=second)


def as_local(slots: tuple[datetime, ...], tz: str) -> list[str]:
    return [s.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") for s in slots]


@pytest.mark.parametrize(
    ("policy", "late_hours"), [(MissedSlotPolicy.SKIP, 0.0), (MissedSlotPolicy.RUN_LATE, 6.0)]
)
def test_every_minute_three_minutes_down_misses_two_slots(
    policy: MissedSlotPolicy, late_hours: float
) -> None:
    """Verify the outage of the report: the daemon ran the 12:00 slot at 12:00:05 (next slot
    12:01), stopped, and is back at 12:03:05. Slots 12:01 and 12:02 passed with no daemon: they
    are the two missed ones; 12:03 is 5 s old, inside the on-time grace, so it runs on time
    under either policy, and the missed two are skipped (run-late only catches up a latest slot
    that is itself late)."""
    decision = decide_due(
        EVERY_MINUTE,
        "UTC",
        next_run_at=at(1),
        now=at(3, 5),
        policy=policy,
        late_window_hours=late_hours,
    )
    assert decision.run and decision.slot == at(3)
    assert decision.next_run_at == at(4)
    assert decision.missed is not None
    assert decision.missed.slots == (at(1), at(2))
    assert decision.missed.action is MissedAction.SKIPPED
    assert decision.missed.policy is policy
    assert decision.missed.caught_up is None
    assert decision.skipped == 2
    assert decision.note == "on time; 2 earlier slot(s) missed, skipped"


def test_late_latest_slot_under_skip_misses_every_slot() -> None:
    """Verify an hourly schedule whose latest slot is 30 min old runs nothing under skip: all
    three slots (10:00, 11:00, 12:00) are missed and skipped."""
    decision = decide_due(HOURLY, "UTC", next_run_at=at(-120), now=at(30))
    assert not decision.run
    assert decision.missed is not None
    assert decision.missed.slots == (at(-120), at(-60), at(0))
    assert decision.missed.action is MissedAction.SKIPPED
    assert [decision.missed.action_of(s) for s in decision.missed.slots] == [
        MissedAction.SKIPPED
    ] * 3


def test_late_latest_slot_under_run_late_catches_up_one() -> None:
    """Verify run-late within 1 h runs once for the latest slot (12:00, 30 min late): the three
    slots are missed, the latest caught up, the two older ones skipped."""
    decision = decide_due(
        HOURLY,
        "UTC",
        next_run_at=at(-120),
        now=at(30),
        policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=1,
    )
    assert decision.run and decision.slot == at(0)
    missed = decision.missed
    assert missed is not None
    assert missed.slots == (at(-120), at(-60), at(0))
    assert missed.action is MissedAction.CAUGHT_UP
    assert missed.caught_up == at(0)
    assert [missed.action_of(s) for s in missed.slots] == [
        MissedAction.SKIPPED,
        MissedAction.SKIPPED,
        MissedAction.CAUGHT_UP,
    ]


def test_run_late_beyond_its_window_skips_every_slot() -> None:
    """Verify run-late within 0.25 h does not catch up a slot 30 min late: all skipped."""
    decision = decide_due(
        HOURLY,
        "UTC",
        next_run_at=at(0),
        now=at(30),
        policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=0.25,
    )
    assert not decision.run
    assert decision.missed is not None
    assert decision.missed.slots == (at(0),)
    assert decision.missed.action is MissedAction.SKIPPED
    assert decision.missed.policy is MissedSlotPolicy.RUN_LATE


@pytest.mark.parametrize(
    ("policy", "action"),
    [(MissedSlotPolicy.SKIP, MissedAction.SKIPPED), (MissedSlotPolicy.RUN_LATE, MissedAction.CAUGHT_UP)],
)  # fmt: skip
def test_daily_slots_missed_across_spring_forward_keep_their_local_time(
    policy: MissedSlotPolicy, action: MissedAction
) -> None:
    """Verify a daily 09:00 New York schedule down from 7 to 10 March 2026 (clocks go forward
    on the 8th) misses four slots, each 09:00 local: 14:00 UTC before the change, 13:00 after."""
    due = datetime(2026, 3, 7, 9, tzinfo=ZoneInfo(NY))
    now = datetime(2026, 3, 10, 10, tzinfo=ZoneInfo(NY))  # an hour after the latest slot
    decision = decide_due(DAILY_9, NY, next_run_at=due, now=now, policy=policy, late_window_hours=2)
    missed = decision.missed
    assert missed is not None and missed.action is action
    assert as_local(missed.slots, NY) == [
        "2026-03-07 09:00 EST",
        "2026-03-08 09:00 EDT",
        "2026-03-09 09:00 EDT",
        "2026-03-10 09:00 EDT",
    ]
    assert [f"{s:%H:%M}" for s in missed.slots] == ["14:00", "13:00", "13:00", "13:00"]
    assert decision.run is (policy is MissedSlotPolicy.RUN_LATE)


def test_daily_slot_missed_across_fall_back_is_counted_once() -> None:
    """Verify a daily 01:30 New York schedule (01:30 happens twice on 1 November 2026) down over
    the change misses that day's slot once, at its first occurrence."""
    cadence = Cadence(kind=CadenceKind.DAILY, at="01:30")
    due = datetime(2026, 10, 31, 1, 30, tzinfo=ZoneInfo(NY))
    now = datetime(2026, 11, 2, 12, tzinfo=ZoneInfo(NY))
    decision = decide_due(cadence, NY, next_run_at=due, now=now)
    assert decision.missed is not None
    assert as_local(decision.missed.slots, NY) == [
        "2026-10-31 01:30 EDT",
        "2026-11-01 01:30 EDT",
        "2026-11-02 01:30 EST",
    ]


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=3), timedelta(minutes=5)])
def test_no_missed_slot_when_on_time(late: timedelta) -> None:
    """Verify an hourly slot claimed within the grace, under either policy, misses nothing."""
    for policy in MissedSlotPolicy:
        decision = decide_due(
            HOURLY, "UTC", next_run_at=at(1), now=at(1) + late, policy=policy,
            late_window_hours=1,
        )  # fmt: skip
        assert decision.run and decision.missed is None and decision.note == "on time"


def test_nothing_missed_when_not_due() -> None:
    """Verify a schedule not due yet reports no missed slot."""
    decision = decide_due(EVERY_MINUTE, "UTC", next_run_at=at(1), now=at(0, 59))
    assert not decision.run and decision.missed is None


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=60 * 60 * 4), min_size=1, max_size=30),
    policy=st.sampled_from(list(MissedSlotPolicy)),
    cadence=st.sampled_from([EVERY_MINUTE, Cadence(kind=CadenceKind.MINUTES, interval=7), HOURLY]),
)
def test_every_slot_is_either_run_or_missed_exactly_once(
    gaps: list[int], policy: MissedSlotPolicy, cadence: Cadence
) -> None:
    """Verify, over daemon ticks at random intervals (seconds to hours apart), that each slot
    from the first to the last is accounted for once: run on time, caught up, or missed."""
    next_at = next_run_after(cadence, NOON, "UTC")
    now = NOON
    accounted: list[datetime] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        decision = decide_due(
            cadence, "UTC", next_run_at=next_at, now=now, policy=policy, late_window_hours=1
        )
        missed = decision.missed.slots if decision.missed else ()
        caught = decision.missed.caught_up if decision.missed else None
        accounted.extend(missed)
        if decision.run and decision.slot != caught:
            accounted.append(decision.slot)  # on time: not among the missed
        assert decision.run is (decision.slot is not None)
        if decision.run:
            assert decision.slot in (caught, max((*missed, decision.slot)))
        next_at = decision.next_run_at
    expected, slot = [], next_run_after(cadence, NOON, "UTC")
    while slot <= now:
        expected.append(slot)
        slot = next_run_after(cadence, slot, "UTC")
    assert accounted == expected
