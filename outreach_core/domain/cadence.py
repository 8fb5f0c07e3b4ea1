"""Cadence -> next run time, in the schedule's own time zone; the missed-slot policy; send windows.

Pure functions of their arguments (no clock, no database), so every rule is tested directly.

Wall-clock cadences (daily, weekdays, weekly, monthly) are local times: "09:00 in
America/New_York" stays 09:00 across daylight-saving changes. Two local times need a rule:
- a time that does not exist (the spring-forward gap, e.g. 02:30 on the changeover day) runs at
  the same distance after the gap (03:30): the slot is moved, never dropped;
- a time that exists twice (the fall-back hour) runs once, at its first occurrence.
Interval cadences (every N minutes or hours) count elapsed time in UTC, so a DST change neither
shortens nor stretches an interval.

Monthly on day D is a calendar month; when D does not exist (31 in April, 29-31 in February),
the slot is the month's last day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from outreach_core.domain.missed_slots import MissedAction, MissedSlotPolicy, MissedSlots
from outreach_core.errors import InputError

__all__ = [
    "ON_TIME_GRACE",
    "Cadence",
    "CadenceKind",
    "DueDecision",
    "MissedAction",
    "MissedSlotPolicy",
    "MissedSlots",
    "SendWindow",
    "decide_due",
    "describe",
    "next_run_after",
    "next_runs",
    "next_window_open",
    "window_is_open",
    "zone",
]

#: a slot fired this late still counts as on time (daemon tick, a restart, clock skew)
ON_TIME_GRACE = timedelta(minutes=5)
#: how far ahead a wall-clock cadence is searched; a monthly slot is always within it
_SEARCH_DAYS = 400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class CadenceKind(StrEnum):
    """How often a schedule fires."""

    #: every `interval` minutes (elapsed time)
    MINUTES = "minutes"
    #: every `interval` hours (elapsed time)
    HOURS = "hours"
    #: every day at `at`
    DAILY = "daily"
    #: Monday to Friday at `at`
    WEEKDAYS = "weekdays"
    #: on the chosen `days` (0 = Monday) at `at`
    WEEKLY = "weekly"
    #: on `day_of_month` (or the month's last day) at `at`
    MONTHLY = "monthly"


def _parse_hhmm(value: str | time) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    parts = str(value).strip().split(":")
    try:
        if len(parts) not in (2, 3) or len(parts[1]) != 2:
            raise ValueError(value)
        return time(int(parts[0]), int(parts[1]))
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 09:00") from None


class Cadence(BaseModel):
    """A schedule's rhythm; stored as JSON in `schedules.cadence`."""

    model_config = ConfigDict(frozen=True)

    kind: CadenceKind
    interval: int | None = Field(default=None, ge=1, le=10_000)
    at: time | None = None
    days: tuple[int, ...] = ()
    day_of_month: int | None = Field(default=None, ge=1, le=31)

    @field_validator("at", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> time | None:
        return None if value is None else _parse_hhmm(value)  # type: ignore[arg-type]

    @field_serializer("at")
    def _hhmm(self, value: time | None) -> str | None:
        return None if value is None else f"{value:%H:%M}"

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= d <= 6 for d in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _complete(self) -> Cadence:
        if self.kind in (CadenceKind.MINUTES, CadenceKind.HOURS):
            if self.interval is None:
                raise ValueError(f"a cadence of every N {self.kind} needs an interval N >= 1")
            return self
        if self.at is None:
            raise ValueError(f"a {self.kind} cadence needs a time of day (at=HH:MM)")
        if self.kind is CadenceKind.WEEKLY and not self.days:
            raise ValueError("a weekly cadence needs at least one day (0 = Monday … 6 = Sunday)")
        if self.kind is CadenceKind.MONTHLY and self.day_of_month is None:
            raise ValueError("a monthly cadence needs a day of the month (1-31)")
        return self


class SendWindow(BaseModel):
    """Local hours in which a run may send; `end` before `start` spans midnight."""

    model_config = ConfigDict(frozen=True)

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> time:
        return _parse_hhmm(value)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _not_empty(self) -> SendWindow:
        if self.start == self.end:
            raise ValueError("a send window's start and end must differ (e.g. 09:00-17:00)")
        return self

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or an InputError saying what a zone name looks like."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"time zone {name!r} is unknown; use an IANA name such as Europe/London or "
            "America/New_York"
        ) from None


def common_zones() -> list[str]:
    """Every IANA zone name, sorted (for a picker)."""
    return sorted(available_timezones())


def _check_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


def _local_slot(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of `at` on `day` in `tz` (gap: shifted forward; repeated: first one)."""
    # fold=0 means: before a fall-back, the first occurrence; in a spring-forward gap, the
    # offset from before the gap, which lands the same distance after it.
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def _matches(cadence: Cadence, day: date) -> bool:
    if cadence.kind is CadenceKind.DAILY:
        return True
    if cadence.kind is CadenceKind.WEEKDAYS:
        return day.weekday() < 5
    if cadence.kind is CadenceKind.WEEKLY:
        return day.weekday() in cadence.days
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(cadence.day_of_month or 1, last)


def next_run_after(cadence: Cadence, after: datetime, tz: str) -> datetime:
    """The first slot strictly after `after`, in UTC."""
    _check_aware(after, "after")
    after = after.astimezone(UTC)
    if cadence.kind in (CadenceKind.MINUTES, CadenceKind.HOURS):
        unit = 60 if cadence.kind is CadenceKind.MINUTES else 3600
        step = (cadence.interval or 1) * unit
        elapsed = int((after - _EPOCH).total_seconds())
        return _EPOCH + timedelta(seconds=(elapsed // step + 1) * step)
    place = zone(tz)
    # start a day early: the local date of `after` may be behind its UTC date
    day = after.astimezone(place).date() - timedelta(days=1)
    for _ in range(_SEARCH_DAYS):
        if _matches(cadence, day):
            slot = _local_slot(day, cadence.at or time(0), place)
            if slot > after:
                return slot
        day += timedelta(days=1)
    raise AssertionError(f"no slot of {cadence} within {_SEARCH_DAYS} days")  # unreachable


def next_runs(cadence: Cadence, after: datetime, tz: str, *, count: int = 5) -> list[datetime]:
    """The next `count` slots after `after`, in UTC."""
    slots: list[datetime] = []
    for _ in range(count):
        after = next_run_after(cadence, after, tz)
        slots.append(after)
    return slots


@dataclass(frozen=True)
class DueDecision:
    """What a daemon does with a schedule at `now`."""

    #: whether to create a run now
    run: bool
    #: the slot the run stands for (None when nothing runs)
    slot: datetime | None
    #: the schedule's next run time after this decision
    next_run_at: datetime
    #: how many slots were passed over without a run
    skipped: int
    #: one line for the log and the page
    note: str
    #: the slots missed (None when none was): recorded, so no slot vanishes without a word
    missed: MissedSlots | None = None


def decide_due(
    cadence: Cadence,
    tz: str,
    *,
    next_run_at: datetime,
    now: datetime,
    policy: MissedSlotPolicy = MissedSlotPolicy.SKIP,
    late_window_hours: float = 0.0,
) -> DueDecision:
    """Whether a due schedule runs now, and its next slot; at most one run, whatever the gap.

    The latest slot at or before `now` is the candidate. Within ON_TIME_GRACE it is on time and
    runs under either policy; the slots before it are missed (skipped). Later than that it runs
    only under RUN_LATE and only within `late_window_hours` (every slot missed, the latest caught
    up); otherwise every slot is missed and skipped. Older slots are never caught up one by one
    (deliberate: three days of downtime do not send three daily mails at once).
    """
    _check_aware(now, "now")
    _check_aware(next_run_at, "next_run_at")
    if next_run_at > now:
        return DueDecision(False, None, next_run_at, 0, "not due")
    passed = [next_run_at.astimezone(UTC)]  # every slot reported in UTC
    while (following := next_run_after(cadence, passed[-1], tz)) <= now:
        passed.append(following)
    latest = passed[-1]
    following = next_run_after(cadence, now, tz)
    lateness = now - latest

    def missed(slots: list[datetime], action: MissedAction) -> MissedSlots | None:
        return MissedSlots(tuple(slots), policy, action) if slots else None

    if lateness <= ON_TIME_GRACE:
        earlier = passed[:-1]
        note = "on time" + (f"; {len(earlier)} earlier slot(s) missed, skipped" if earlier else "")
        return DueDecision(
            True, latest, following, len(earlier), note, missed(earlier, MissedAction.SKIPPED)
        )
    if policy is MissedSlotPolicy.RUN_LATE and lateness <= timedelta(hours=late_window_hours):
        note = f"late by {_duration(lateness)} (run-late policy)"
        return DueDecision(
            True, latest, following, len(passed) - 1, note, missed(passed, MissedAction.CAUGHT_UP)
        )
    return DueDecision(
        False,
        None,
        following,
        len(passed),
        f"missed {len(passed)} slot(s), the latest {_duration(lateness)} ago; skipped by policy",
        missed(passed, MissedAction.SKIPPED),
    )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def window_is_open(window: SendWindow, tz: str, at: datetime) -> bool:
    """Whether `at` falls inside the window in local time (start inclusive, end exclusive)."""
    _check_aware(at, "at")
    local = at.astimezone(zone(tz)).time().replace(tzinfo=None)
    if window.start < window.end:
        return window.start <= local < window.end
    return local >= window.start or local < window.end


def next_window_open(window: SendWindow, tz: str, after: datetime) -> datetime:
    """The next time the window opens strictly after `after`, in UTC."""
    return next_run_after(Cadence(kind=CadenceKind.DAILY, at=window.start), after, tz)


def describe(cadence: Cadence) -> str:
    """The cadence as a phrase: "weekdays at 09:00", "every 15 minutes"."""
    at = f"{cadence.at:%H:%M}" if cadence.at else ""
    match cadence.kind:
        case CadenceKind.MINUTES | CadenceKind.HOURS:
            return f"every {cadence.interval} {cadence.kind}"
        case CadenceKind.DAILY:
            return f"daily at {at}"
        case CadenceKind.WEEKDAYS:
            return f"weekdays at {at}"
        case CadenceKind.WEEKLY:
            return f"weekly on {', '.join(WEEKDAY_NAMES[d] for d in cadence.days)} at {at}"
        case _:
            return f"monthly on day {cadence.day_of_month} at {at}"


def parse_window(text: str) -> SendWindow:
    """`HH:MM-HH:MM` into a SendWindow; an InputError shows the expected form."""
    start, dash, end = text.partition("-")
    try:
        if not dash:
            raise ValueError(text)
        return SendWindow(start=start.strip(), end=end.strip())
    except ValueError:
        raise InputError(f"send window {text!r}: write HH:MM-HH:MM, e.g. 09:00-17:00") from None


class Schedule(BaseModel):
    """A workflow's recurring run, as stored; times in UTC."""

    id: int
    workflow_id: int
    cadence: Cadence
    timezone: str
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    missed_policy: MissedSlotPolicy = MissedSlotPolicy.SKIP
    late_window_hours: float = 0.0
    window_start: str | None = None
    window_end: str | None = None
    last_run_id: int | None = None
    last_note: str | None = None

    @property
    def window(self) -> SendWindow | None:
        """The send window, when both ends are set."""
        if self.window_start and self.window_end:
            return SendWindow(start=self.window_start, end=self.window_end)
        return None

    def __str__(self) -> str:
        state = "" if self.enabled else " (disabled)"
        return f"schedule {self.id}: {describe(self.cadence)} {self.timezone}{state}"
