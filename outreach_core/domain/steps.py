"""Follow-up steps: a workflow's steps 2 to 5, when each is due, and who receives it.

Pure: no clock, no database. Step 1 is the workflow's own message; step N+1 is its own template,
sent `delay_days` after step N ended, counted in local days of the run's time zone (the
schedule's, for a scheduled run), to those of step N who were sent the message and have not
replied, bounced, complained or unsubscribed since.

Two local times need the same rules as a cadence (`domain/cadence.py`): a local time that does
not exist on the due day (the spring-forward gap) is moved the same distance past the gap; one
that exists twice (fall-back) is its first occurrence. A due time outside the send window moves
to the window's next opening.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outreach_core.domain.cadence import SendWindow, next_window_open, window_is_open, zone
from outreach_core.domain.models import Feedback
from outreach_core.domain.outcomes import ENDS_SEQUENCE
from outreach_core.domain.states import DeliveryStatus, SkipReason
from outreach_core.errors import InputError, TemplateError

#: a workflow has at most this many steps, its own message included
MAX_STEPS = 5
#: the longest delay a step may have, in days
MAX_DELAY_DAYS = 365
#: a step overdue by more than this is not sent: the daemons were down that long, or the step
#: was added to a workflow whose earlier runs ended long ago (they get no follow-up)
LATE_LIMIT = timedelta(days=2)
#: the trigger of a follow-up run that continues its recipients' thread, and of one that starts
#: a new one (the run's trigger freezes the choice: editing the step later changes neither)
FOLLOW_UP_TRIGGER = "follow-up"
NEW_THREAD_TRIGGER = "follow-up, new thread"


class StepDefinition(BaseModel):
    """Step `step` (2 to 5) of a workflow: its template, sent `delay_days` after the step
    before, continuing that step's thread (`thread`) or starting a new one."""

    model_config = ConfigDict(frozen=True)

    step: int = Field(ge=2, le=MAX_STEPS)
    template_id: int
    delay_days: int = Field(ge=1, le=MAX_DELAY_DAYS)
    thread: bool = True

    @property
    def trigger(self) -> str:
        """The trigger its runs are queued with."""
        return FOLLOW_UP_TRIGGER if self.thread else NEW_THREAD_TRIGGER

    def __str__(self) -> str:
        how = "in the same thread" if self.thread else "as a new thread"
        return f"step {self.step}: {self.delay_days} days after step {self.step - 1}, {how}"


def is_threaded(trigger: str) -> bool:
    """Whether a follow-up run queued with `trigger` continues its recipients' thread."""
    return trigger == FOLLOW_UP_TRIGGER


def check_steps(steps: Sequence[StepDefinition]) -> list[StepDefinition]:
    """The steps in order, or an InputError: numbered 2, 3, ... without a gap, at most
    MAX_STEPS - 1 of them."""
    ordered = sorted(steps, key=lambda s: s.step)
    if len(ordered) > MAX_STEPS - 1:
        raise InputError(
            f"a workflow has at most {MAX_STEPS} steps: its own message and "
            f"{MAX_STEPS - 1} follow-ups"
        )
    for expected, step in enumerate(ordered, start=2):
        if step.step != expected:
            raise InputError(
                f"follow-up steps are numbered 2 to {MAX_STEPS} without a gap; "
                f"step {expected} is missing before step {step.step}"
            )
    return ordered


def next_step(steps: Iterable[StepDefinition], after: int) -> StepDefinition | None:
    """The step that follows step `after`, if the workflow has one."""
    return next((s for s in steps if s.step == after + 1), None)


def step_due_at(
    previous_at: datetime,
    delay_days: int,
    timezone: str,
    window: SendWindow | None = None,
) -> datetime:
    """When a step falls due, in UTC: `delay_days` local days after `previous_at` (the end of
    the step before) at the same local time in `timezone`, moved to the next opening of
    `window` when it falls outside it.

    Local days, not 24-hour periods: across a DST change the step keeps its local time.
    """
    if previous_at.tzinfo is None:
        raise ValueError("previous_at must be timezone-aware")
    if delay_days < 1:
        raise ValueError("a step is at least one day after the step before")
    tz = zone(timezone)
    local = previous_at.astimezone(tz).replace(tzinfo=None) + timedelta(days=delay_days)
    # fold=0: the first of a repeated hour; in a gap, the offset from before it (moved forward)
    due = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if window is not None and not window_is_open(window, timezone, due):
        due = next_window_open(window, timezone, due)
    return due


def is_due(
    previous_at: datetime,
    step: StepDefinition,
    timezone: str,
    window: SendWindow | None,
    *,
    now: datetime,
) -> bool:
    """Whether `step` is due at `now` after a step that ended at `previous_at`, and not
    missed (`is_missed`)."""
    due = step_due_at(previous_at, step.delay_days, timezone, window)
    return due <= now and not is_missed(due, now=now)


def is_missed(due: datetime, *, now: datetime) -> bool:
    """Whether a step due at `due` is overdue by more than LATE_LIMIT at `now`: not sent."""
    return now - due > LATE_LIMIT


def candidate_ends(now: datetime) -> tuple[datetime, datetime]:
    """The range of end times of runs whose next step may be due at `now`: at least a day
    (less an hour of daylight saving) and at most MAX_DELAY_DAYS, LATE_LIMIT and a day of time
    zone offsets ago."""
    latest = now - timedelta(hours=23)
    earliest = now - timedelta(days=MAX_DELAY_DAYS + 1) - LATE_LIMIT
    return earliest, latest


def why_not_followed(
    status: DeliveryStatus,
    feedbacks: Iterable[Feedback | str | None],
    *,
    suppressed: bool,
) -> str | None:
    """Why a recipient of step N does not get step N+1, or None when they do.

    Only a message that was sent is followed up. Any delivery of the recipient's thread so far
    (`feedbacks`: step N's and those before) that was replied to, bounced or complained about
    ends it; so does the address being on the suppression list (unsubscribed, or suppressed
    for a bounce or complaint). An automatic reply or a soft bounce does not.
    """
    if status is not DeliveryStatus.SENT:
        return f"not sent ({status})"
    ended = {Feedback(f) for f in feedbacks if f} & ENDS_SEQUENCE
    if ended:
        return min(str(f) for f in ended)
    if suppressed:
        return "suppressed"
    return None


#: the reason word of a recipient whose thread ended before this step (then what ended it)
SEQUENCE_ENDED = "sequence_ended"


@dataclass(frozen=True)
class FollowUpCandidate:
    """A recipient of the step before, as planning a follow-up needs it."""

    previous_delivery_id: int
    row_number: int | None
    email: str
    key: str | None
    variables: dict[str, Any]
    status: DeliveryStatus
    #: the feedback of the previous delivery and of the thread's earlier ones
    feedbacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedFollowUp:
    """A follow-up delivery: pending, or skipped with the reason."""

    candidate: FollowUpCandidate
    status: DeliveryStatus
    reason: str | None = None


def plan_follow_ups(
    candidates: Iterable[FollowUpCandidate],
    *,
    suppressed: Mapping[str, str],
    render: Callable[[FollowUpCandidate], object],
) -> Iterator[PlannedFollowUp]:
    """Each candidate's fate: pending, or skipped because its thread ended (replied, bounced,
    complained: `sequence_ended`), it is suppressed, or the step's template does not render for
    it (`render` raises TemplateError). Candidates that were not sent are left out: the
    follow-up is for the recipients step N reached."""
    for candidate in candidates:
        if candidate.status is not DeliveryStatus.SENT:
            continue
        is_suppressed = candidate.key is not None and candidate.key in suppressed
        why = why_not_followed(candidate.status, candidate.feedbacks, suppressed=is_suppressed)
        if why == "suppressed":
            reason = f"{SkipReason.SUPPRESSED}: on the suppression list ({suppressed[candidate.key or '']})"
            yield PlannedFollowUp(candidate, DeliveryStatus.SKIPPED, reason)
            continue
        if why is not None:
            yield PlannedFollowUp(candidate, DeliveryStatus.SKIPPED, f"{SEQUENCE_ENDED}: {why}")
            continue
        try:
            render(candidate)
        except TemplateError as exc:
            reason = f"{SkipReason.RENDER_ERROR}: {exc}"
            yield PlannedFollowUp(candidate, DeliveryStatus.SKIPPED, reason)
            continue
        yield PlannedFollowUp(candidate, DeliveryStatus.PENDING)
