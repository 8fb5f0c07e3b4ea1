"""Next-run computation: local wall-clock times across DST, month ends, weekends, downtime."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from outreach_core.domain.cadence import (
    Cadence,
    CadenceKind,
    MissedSlotPolicy,
    SendWindow,
    decide_due,
    describe,
    next_run_after,
    next_runs,
    next_window_open,
    window_is_open,
)
from outreach_core.errors import InputError

NY = "America/New_York"
LONDON = "Europe/London"


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def as_local(slots: list[datetime], tz: str) -> list[str]:
    return [s.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") for s in slots]


DAILY_9 = Cadence(kind=CadenceKind.DAILY, at="09:00")


@pytest.mark.parametrize(
    ("tz", "start", "expected"),
    [
        # spring forward in New York: 8 March 2026, 02:00 EST -> 03:00 EDT
        (NY, (2026, 3, 6, 12), ["2026-03-07 09:00 EST", "2026-03-08 09:00 EDT", "2026-03-09 09:00 EDT"]),
        # fall back in New York: 1 November 2026
        (NY, (2026, 10, 30, 12), ["2026-10-31 09:00 EDT", "2026-11-01 09:00 EST", "2026-11-02 09:00 EST"]),
        # London: 29 March 2026 (GMT -> BST) and 25 October 2026 (BST -> GMT)
        (LONDON, (2026, 3, 27, 12), ["2026-03-28 09:00 GMT", "2026-03-29 09:00 BST", "2026-03-30 09:00 BST"]),
        (LONDON, (2026, 10, 23, 12), ["2026-10-24 09:00 BST", "2026-10-25 09:00 GMT", "2026-10-26 09:00 GMT"]),
    ],
)  # fmt: skip
def test_daily_slot_keeps_its_local_time_across_dst(
    tz: str, start: tuple[int, ...], expected: list[str]
) -> None:
    """Verify a daily 09:00 stays 09:00 local on both sides of a DST change."""
    assert as_local(next_runs(DAILY_9, local(tz, *start), tz, count=3), tz) == expected


def test_daily_slot_is_24_utc_hours_apart_except_across_the_change() -> None:
    """Verify the UTC gap across spring-forward is 23 h (one run per local day, none lost)."""
    slots = next_runs(DAILY_9, local(NY, 2026, 3, 7, 8), NY, count=2)
    assert slots[1] - slots[0] == timedelta(hours=23)


def test_slot_inside_the_spring_forward_gap_runs_once_after_the_gap() -> None:
    """Verify 02:30 on the New York changeover day (a time that does not exist) runs at 03:30."""
    cadence = Cadence(kind=CadenceKind.DAILY, at="02:30")
    slots = next_runs(cadence, local(NY, 2026, 3, 7, 3), NY, count=2)
    assert as_local(slots, NY) == ["2026-03-08 03:30 EDT", "2026-03-09 02:30 EDT"]


@pytest.mark.parametrize("tz", [NY, LONDON])
def test_slot_in_the_repeated_fall_back_hour_runs_once(tz: str) -> None:
    """Verify 01:30 on the fall-back day (it happens twice) gives exactly one slot that day."""
    cadence = Cadence(kind=CadenceKind.DAILY, at="01:30")
    eve = local(NY, 2026, 10, 31, 12) if tz == NY else local(LONDON, 2026, 10, 24, 12)
    slots = next_runs(cadence, eve, tz, count=3)
    days = [s.astimezone(ZoneInfo(tz)).date() for s in slots]
    assert len(set(days)) == 3  # one per day: no doubled run
    assert [s.astimezone(ZoneInfo(tz)).strftime("%H:%M") for s in slots] == ["01:30"] * 3


def test_hourly_interval_counts_elapsed_time_through_dst() -> None:
    """Verify every 1 hour across the fall-back night is exactly 60 minutes apart, 5 slots."""
    cadence = Cadence(kind=CadenceKind.HOURS, interval=1)
    slots = next_runs(cadence, local(NY, 2026, 11, 1, 0, 10), NY, count=5)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(slots))


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ((2026, 1, 31, 12), ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]),
        ((2028, 1, 31, 12), ["2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"]),  # leap year
    ],
)
def test_monthly_on_day_31_uses_the_last_day_of_short_months(
    start: tuple[int, ...], expected: list[str]
) -> None:
    """Verify day 31 means 28/29 February and 30 April: calendar months, not +30 days."""
    cadence = Cadence(kind=CadenceKind.MONTHLY, day_of_month=31, at="08:00")
    slots = next_runs(cadence, local(LONDON, *start), LONDON, count=4)
    assert [s.astimezone(ZoneInfo(LONDON)).date().isoformat() for s in slots] == expected


def test_monthly_on_day_15_is_a_calendar_month() -> None:
    """Verify monthly on the 15th stays on the 15th (not drifting by 30 days)."""
    cadence = Cadence(kind=CadenceKind.MONTHLY, day_of_month=15, at="10:00")
    slots = next_runs(cadence, local(NY, 2026, 1, 1), NY, count=12)
    assert {s.astimezone(ZoneInfo(NY)).day for s in slots} == {15}
    assert {s.astimezone(ZoneInfo(NY)).hour for s in slots} == {10}


def test_weekdays_skip_the_weekend() -> None:
    """Verify weekdays at 09:00 from Friday afternoon goes to Monday, then Tuesday."""
    cadence = Cadence(kind=CadenceKind.WEEKDAYS, at="09:00")
    friday_afternoon = local(LONDON, 2026, 12, 4, 15)  # a Friday
    slots = next_runs(cadence, friday_afternoon, LONDON, count=2)
    assert as_local(slots, LONDON) == ["2026-12-07 09:00 GMT", "2026-12-08 09:00 GMT"]


def test_weekly_on_chosen_days() -> None:
    """Verify weekly on Monday and Thursday gives only those days."""
    cadence = Cadence(kind=CadenceKind.WEEKLY, days=(3, 0), at="07:15")
    slots = next_runs(cadence, local(NY, 2026, 12, 1), NY, count=4)
    assert [s.astimezone(ZoneInfo(NY)).strftime("%a %H:%M") for s in slots] == [
        "Thu 07:15",
        "Mon 07:15",
        "Thu 07:15",
        "Mon 07:15",
    ]


def test_local_date_ahead_of_utc_is_found() -> None:
    """Verify Asia/Tokyo 08:00 is found when the UTC date is still the day before."""
    tz = "Asia/Tokyo"
    after = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)  # 05:00 on 2 June in Tokyo
    assert as_local([next_run_after(DAILY_9, after, tz)], tz) == ["2026-06-02 09:00 JST"]


def test_three_days_of_downtime_skip_policy_runs_nothing() -> None:
    """Verify a daily schedule missed for three days runs nothing under skip; next is future."""
    due = local(NY, 2026, 12, 1, 9).astimezone(UTC)
    now = local(NY, 2026, 12, 4, 11)
    decision = decide_due(DAILY_9, NY, next_run_at=due, now=now, policy=MissedSlotPolicy.SKIP)
    assert not decision.run
    assert decision.skipped == 4  # 1st, 2nd, 3rd and 4th at 09:00
    assert as_local([decision.next_run_at], NY) == ["2026-12-05 09:00 EST"]


def test_three_days_of_downtime_run_late_policy_runs_exactly_once() -> None:
    """Verify run-late within 6 h runs once, for the latest slot, and moves to the next one."""
    due = local(NY, 2026, 12, 1, 9).astimezone(UTC)
    now = local(NY, 2026, 12, 4, 11)
    decision = decide_due(
        DAILY_9, NY, next_run_at=due, now=now, policy=MissedSlotPolicy.RUN_LATE, late_window_hours=6
    )
    assert decision.run
    assert as_local([decision.slot], NY) == ["2026-12-04 09:00 EST"]
    assert as_local([decision.next_run_at], NY) == ["2026-12-05 09:00 EST"]
    again = decide_due(
        DAILY_9,
        NY,
        next_run_at=decision.next_run_at,
        now=now,
        policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=6,
    )
    assert not again.run  # the same moment never fires twice


def test_run_late_outside_its_window_runs_nothing() -> None:
    """Verify run-late within 1 h does not run a slot that is 2 h old."""
    due = local(NY, 2026, 12, 1, 9).astimezone(UTC)
    decision = decide_due(
        DAILY_9,
        NY,
        next_run_at=due,
        now=local(NY, 2026, 12, 1, 11),
        policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=1,
    )
    assert not decision.run


def test_slot_a_few_seconds_late_is_on_time_under_skip() -> None:
    """Verify a daemon tick seconds after the slot runs it, under the default policy."""
    due = local(NY, 2026, 12, 1, 9).astimezone(UTC)
    decision = decide_due(DAILY_9, NY, next_run_at=due, now=due + timedelta(seconds=3))
    assert decision.run and decision.slot == due
    assert decision.next_run_at == due + timedelta(days=1)


def test_not_due_yet() -> None:
    """Verify a future next_run_at is left alone."""
    due = datetime(2026, 12, 1, 14, tzinfo=UTC)
    decision = decide_due(DAILY_9, NY, next_run_at=due, now=due - timedelta(seconds=1))
    assert not decision.run and decision.next_run_at == due


@pytest.mark.parametrize(
    ("hour", "is_open"), [(8, False), (9, True), (12, True), (16, True), (17, False), (23, False)]
)
def test_send_window_in_local_time(hour: int, is_open: bool) -> None:
    """Verify 09:00-17:00 in London: open from 09:00 up to (not at) 17:00."""
    window = SendWindow(start="09:00", end="17:00")
    assert window_is_open(window, LONDON, local(LONDON, 2026, 7, 1, hour)) is is_open


def test_send_window_across_midnight() -> None:
    """Verify 22:00-06:00 is open at 23:00 and 05:00, closed at 12:00."""
    window = SendWindow(start="22:00", end="06:00")
    assert window_is_open(window, NY, local(NY, 2026, 7, 1, 23))
    assert window_is_open(window, NY, local(NY, 2026, 7, 1, 5))
    assert not window_is_open(window, NY, local(NY, 2026, 7, 1, 12))


def test_run_paused_at_window_end_resumes_at_next_start() -> None:
    """Verify the next opening after 17:00 on a Friday is 09:00 local the next day."""
    window = SendWindow(start="09:00", end="17:00")
    resume = next_window_open(window, NY, local(NY, 2026, 12, 4, 17))
    assert as_local([resume], NY) == ["2026-12-05 09:00 EST"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "daily"}, "needs a time of day"),
        ({"kind": "hours"}, "needs an interval"),
        ({"kind": "weekly", "at": "09:00"}, "at least one day"),
        ({"kind": "monthly", "at": "09:00"}, "day of the month"),
        ({"kind": "daily", "at": "9h"}, "HH:MM"),
        ({"kind": "weekly", "at": "09:00", "days": [7]}, "0 (Monday)"),
        ({"kind": "fortnightly", "at": "09:00"}, "daily"),
    ],
)
def test_incomplete_cadence_says_what_is_missing(data: dict, message: str) -> None:
    """Verify each incomplete cadence names what to add."""
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Cadence.model_validate(data)


def test_unknown_time_zone_names_the_format() -> None:
    """Verify a bad zone name is an InputError with an example of a good one."""
    with pytest.raises(InputError, match="Europe/London"):
        next_run_after(DAILY_9, datetime(2026, 1, 1, tzinfo=UTC), "Mars/Olympus")


def test_describe() -> None:
    """Verify cadences read as phrases."""
    assert describe(Cadence(kind=CadenceKind.WEEKDAYS, at="09:00")) == "weekdays at 09:00"
    assert describe(Cadence(kind=CadenceKind.MINUTES, interval=15)) == "every 15 minutes"
