"""Follow-up steps, pure: definitions, when a step is due (time zones, DST, send windows), the
`Re:` subject, the References chain, who gets the next step, and the engine it prefers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from outreach_core.domain.cadence import SendWindow
from outreach_core.domain.engine_rotation import EngineSlot, assign_preferred
from outreach_core.domain.models import Feedback
from outreach_core.domain.reply_thread import (
    ThreadLink,
    cap_references,
    reply_subject,
    thread_headers,
)
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.steps import (
    FOLLOW_UP_TRIGGER,
    LATE_LIMIT,
    MAX_DELAY_DAYS,
    NEW_THREAD_TRIGGER,
    FollowUpCandidate,
    StepDefinition,
    candidate_ends,
    check_steps,
    is_due,
    is_missed,
    is_threaded,
    next_step,
    plan_follow_ups,
    step_due_at,
    why_not_followed,
)
from outreach_core.errors import InputError, TemplateError


def step(number: int, days: int = 3, *, thread: bool = True) -> StepDefinition:
    return StepDefinition(step=number, template_id=7, delay_days=days, thread=thread)


# --- definitions -------------------------------------------------------------------------


def test_a_step_is_2_to_5_at_least_a_day_after_the_one_before() -> None:
    """Verify step numbers outside 2-5 and delays under one day are refused."""
    for bad in ({"step": 1}, {"step": 6}, {"delay_days": 0}, {"delay_days": -2}):
        with pytest.raises(ValidationError):
            StepDefinition(**({"step": 2, "template_id": 1, "delay_days": 1} | bad))
    assert step(5, 1).thread is True  # continuing the thread is the default


def test_steps_are_numbered_without_a_gap_and_at_most_four() -> None:
    """Verify check_steps orders the steps and refuses a gap or a sixth step."""
    assert [s.step for s in check_steps([step(3), step(2)])] == [2, 3]
    assert check_steps([]) == []
    with pytest.raises(InputError, match="step 2 is missing"):
        check_steps([step(3)])
    with pytest.raises(InputError, match="at most 5 steps"):
        check_steps([step(2), step(3), step(4), step(5), step(5)])


def test_next_step_and_the_trigger_that_freezes_threading() -> None:
    """Verify next_step finds N+1, and a run's trigger says whether it continues the thread."""
    steps = [step(2), step(3, thread=False)]
    assert next_step(steps, 1) == steps[0]
    assert next_step(steps, 3) is None
    assert steps[0].trigger == FOLLOW_UP_TRIGGER and is_threaded(steps[0].trigger)
    assert steps[1].trigger == NEW_THREAD_TRIGGER and not is_threaded(steps[1].trigger)
    assert not is_threaded("schedule")


# --- when a step is due --------------------------------------------------------------------


def test_due_three_local_days_later_at_the_same_local_time() -> None:
    """Verify a step 3 days after 09:00 Paris is due 09:00 Paris three days on."""
    ended = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)  # 09:00 in Paris (CEST)
    assert step_due_at(ended, 3, "Europe/Paris") == datetime(2030, 6, 6, 7, 0, tzinfo=UTC)


def test_days_are_local_days_across_the_spring_change() -> None:
    """Verify a step over the March DST change keeps 09:00 New York (72 h minus one)."""
    ended = datetime(2030, 3, 8, 14, 0, tzinfo=UTC)  # Fri 09:00 EST; DST starts Sun 10 March
    due = step_due_at(ended, 3, "America/New_York")
    assert due == datetime(2030, 3, 11, 13, 0, tzinfo=UTC)  # Mon 09:00 EDT
    assert (due - ended).total_seconds() == 71 * 3600


def test_days_are_local_days_across_the_autumn_change() -> None:
    """Verify a step over the November DST change keeps the local time (72 h plus one)."""
    ended = datetime(2030, 11, 1, 13, 0, tzinfo=UTC)  # Fri 09:00 EDT; EST from Sun 3 Nov
    assert step_due_at(ended, 3, "America/New_York") == datetime(2030, 11, 4, 14, 0, tzinfo=UTC)


def test_a_local_time_in_the_spring_gap_moves_past_it() -> None:
    """Verify 02:30 local on the day 02:00-03:00 does not exist lands at 03:30."""
    ended = datetime(2030, 3, 9, 7, 30, tzinfo=UTC)  # Sat 02:30 EST
    due = step_due_at(ended, 1, "America/New_York")
    assert due == datetime(2030, 3, 10, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert due.astimezone(ZoneInfo("America/New_York")).hour == 3


def test_a_repeated_local_time_is_its_first_occurrence() -> None:
    """Verify 01:30 local on the fall-back day is the first 01:30 (EDT)."""
    ended = datetime(2030, 11, 2, 5, 30, tzinfo=UTC)  # Sat 01:30 EDT
    assert step_due_at(ended, 1, "America/New_York") == datetime(2030, 11, 3, 5, 30, tzinfo=UTC)


def test_outside_the_send_window_the_step_waits_for_its_opening() -> None:
    """Verify a due time of 18:30 local with a 09:00-17:00 window moves to 09:00 next day,
    and one inside the window stays."""
    window = SendWindow(start="09:00", end="17:00")
    late = datetime(2030, 6, 3, 16, 30, tzinfo=UTC)  # 18:30 Paris
    assert step_due_at(late, 2, "Europe/Paris", window) == datetime(2030, 6, 6, 7, 0, tzinfo=UTC)
    inside = datetime(2030, 6, 3, 8, 0, tzinfo=UTC)  # 10:00 Paris
    assert step_due_at(inside, 2, "Europe/Paris", window) == datetime(2030, 6, 5, 8, 0, tzinfo=UTC)


def test_is_due_only_once_the_days_have_passed() -> None:
    """Verify is_due is False a minute before and True at the due time."""
    ended = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
    due = datetime(2030, 6, 6, 7, 0, tzinfo=UTC)
    assert not is_due(ended, step(2), "Europe/Paris", None, now=due.replace(minute=0, hour=6))
    assert is_due(ended, step(2), "Europe/Paris", None, now=due)


def test_a_step_more_than_two_days_overdue_is_missed() -> None:
    """Verify a step is due up to LATE_LIMIT after its time and missed beyond; the runs looked
    at end between 23 hours and a year and a few days ago."""
    ended = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
    due = datetime(2030, 6, 6, 7, 0, tzinfo=UTC)
    assert is_due(ended, step(2), "Europe/Paris", None, now=due + LATE_LIMIT)
    assert is_missed(due, now=due + LATE_LIMIT + timedelta(seconds=1))
    assert not is_due(ended, step(2), "Europe/Paris", None, now=due + timedelta(days=3))
    earliest, latest = candidate_ends(due)
    assert latest == due - timedelta(hours=23)
    assert earliest == due - timedelta(days=MAX_DELAY_DAYS + 1) - LATE_LIMIT


def test_due_needs_an_aware_time_a_real_zone_and_a_day() -> None:
    """Verify naive times, unknown zones and delays under a day are refused."""
    with pytest.raises(ValueError, match="aware"):
        step_due_at(datetime(2030, 6, 3), 1, "UTC")
    with pytest.raises(InputError, match="time zone"):
        step_due_at(datetime(2030, 6, 3, tzinfo=UTC), 1, "Mars/Olympus")
    with pytest.raises(ValueError, match="one day"):
        step_due_at(datetime(2030, 6, 3, tzinfo=UTC), 0, "UTC")


# --- subjects and headers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello Ann", "Re: Hello Ann"),
        ("Re: Hello Ann", "Re: Hello Ann"),
        ("RE: re: Hello Ann", "Re: Hello Ann"),
        ("Re[2]: Hello", "Re: Hello"),
        ("AW: Hallo", "Re: Hallo"),
        ("  Re :  spaced ", "Re: spaced"),
        ("Regarding the offer", "Re: Regarding the offer"),
        ("", "Re:"),
    ],
)
def test_reply_subjects_never_stack(subject: str, expected: str) -> None:
    """Verify `Re: ` is added once, whatever reply prefixes the subject had."""
    assert reply_subject(subject) == expected


def test_a_second_step_refers_to_the_first() -> None:
    """Verify step 2's In-Reply-To and References are step 1's Message-ID."""
    headers = thread_headers([ThreadLink(1, "<a@x>", threaded=False)])
    assert headers.as_headers() == {"In-Reply-To": "<a@x>", "References": "<a@x>"}


def test_later_steps_carry_the_whole_thread_oldest_first() -> None:
    """Verify step 4's References are steps 1, 2, 3 and its In-Reply-To step 3."""
    chain = [
        ThreadLink(3, "<c@x>", threaded=True),
        ThreadLink(2, "<b@x>", threaded=True),
        ThreadLink(1, "<a@x>", threaded=False),
    ]
    headers = thread_headers(chain)
    assert headers.in_reply_to == "<c@x>"
    assert headers.references == ("<a@x>", "<b@x>", "<c@x>")


def test_a_step_that_started_a_new_thread_is_where_references_begin() -> None:
    """Verify a step after a new-thread step 2 refers to step 2 only, not to step 1."""
    chain = [ThreadLink(2, "<b@x>", threaded=False), ThreadLink(1, "<a@x>", threaded=False)]
    assert thread_headers(chain).references == ("<b@x>",)


def test_references_are_capped_keeping_the_first_and_the_latest() -> None:
    """Verify a long list keeps the first id and the latest ones, without duplicates."""
    ids = [f"<{n}@x>" for n in range(15)] + ["<14@x>"]
    capped = cap_references(ids, 4)
    assert capped == ("<0@x>", "<12@x>", "<13@x>", "<14@x>")
    with pytest.raises(ValueError):
        cap_references(ids, 1)
    with pytest.raises(ValueError):
        thread_headers([])


# --- who gets the next step -----------------------------------------------------------------


def test_replies_bounces_complaints_and_suppressions_end_the_sequence() -> None:
    """Verify who is not followed up, and that auto-replies and soft bounces still are."""
    sent = DeliveryStatus.SENT
    assert why_not_followed(sent, [Feedback.REPLIED], suppressed=False) == "replied"
    assert why_not_followed(sent, ["bounced"], suppressed=True) == "bounced"
    assert why_not_followed(sent, [Feedback.COMPLAINED], suppressed=False) == "complained"
    assert why_not_followed(sent, [None], suppressed=True) == "suppressed"
    assert why_not_followed(sent, [Feedback.AUTO_REPLIED], suppressed=False) is None
    assert why_not_followed(sent, [Feedback.SOFT_BOUNCED, None], suppressed=False) is None
    # a reply to an earlier step ends it too
    assert why_not_followed(sent, [None, Feedback.REPLIED], suppressed=False) == "replied"
    assert why_not_followed(DeliveryStatus.FAILED, [], suppressed=False) == "not sent (failed)"


def candidate(
    n: int, *feedbacks: str, status: DeliveryStatus = DeliveryStatus.SENT
) -> FollowUpCandidate:
    return FollowUpCandidate(
        previous_delivery_id=n,
        row_number=n,
        email=f"p{n}@example.com",
        key=f"p{n}@example.com",
        variables={"name": f"P{n}"},
        status=status,
        feedbacks=tuple(feedbacks),
    )


def test_planning_a_follow_up() -> None:
    """Verify the plan: unsent rows left out, ended threads and suppressed addresses skipped
    with their reason, a row that does not render skipped, the rest pending."""

    def render(c: FollowUpCandidate) -> object:
        if c.previous_delivery_id == 5:
            raise TemplateError("'offer' is undefined")
        return None

    plan = list(
        plan_follow_ups(
            [
                candidate(1),
                candidate(2, "replied"),
                candidate(3, "auto_replied"),
                candidate(4),
                candidate(5),
                candidate(6, status=DeliveryStatus.FAILED),
            ],
            suppressed={"p4@example.com": "unsubscribed"},
            render=render,
        )
    )
    fates = {p.candidate.previous_delivery_id: (p.status, p.reason) for p in plan}
    assert fates == {
        1: (DeliveryStatus.PENDING, None),
        2: (DeliveryStatus.SKIPPED, "sequence_ended: replied"),
        3: (DeliveryStatus.PENDING, None),
        4: (DeliveryStatus.SKIPPED, "suppressed: on the suppression list (unsubscribed)"),
        5: (DeliveryStatus.SKIPPED, "render_error: 'offer' is undefined"),
    }


# --- the engine a follow-up prefers ---------------------------------------------------------


def test_a_follow_up_prefers_the_engine_of_the_step_before_while_it_has_quota() -> None:
    """Verify preferred engines are kept until their quota is used, then rotation decides."""
    slots = [
        EngineSlot(engine_id=1, name="a", position=0, daily_quota=2, used_today=0),
        EngineSlot(engine_id=2, name="b", position=1, daily_quota=10, used_today=0),
    ]
    assert assign_preferred(slots, [1, 1, 1, None, 2]) == [1, 1, 2, 2, 2]
    broken = [slots[0].__class__(**{**slots[0].__dict__, "error": "auth"}), slots[1]]
    assert assign_preferred(broken, [1]) == [2]
    assert assign_preferred(slots, [9]) == [2]  # an engine no longer in the workflow
    full = [EngineSlot(engine_id=1, name="a", position=0, daily_quota=1, used_today=1)]
    assert assign_preferred(full, [1, 1]) == []
