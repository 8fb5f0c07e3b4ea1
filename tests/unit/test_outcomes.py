"""The precedence of what comes back about a delivery (`domain.outcomes`)."""

from __future__ import annotations

import pytest

from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.models import Feedback
from outreach_core.domain.outcomes import (
    ENDS_SEQUENCE,
    FEEDBACK_OF_KIND,
    outranks,
    stronger_feedbacks,
)


def test_every_recorded_kind_has_a_feedback_and_other_has_none() -> None:
    assert set(FEEDBACK_OF_KIND) == set(FeedbackKind) - {FeedbackKind.OTHER}


@pytest.mark.parametrize(
    ("new", "current", "expected"),
    [
        (Feedback.REPLIED, None, True),
        (Feedback.REPLIED, Feedback.SOFT_BOUNCED, True),
        (Feedback.REPLIED, Feedback.AUTO_REPLIED, True),
        (Feedback.REPLIED, Feedback.REPLIED, False),
        (Feedback.REPLIED, Feedback.BOUNCED, False),
        (Feedback.BOUNCED, Feedback.REPLIED, True),
        (Feedback.COMPLAINED, Feedback.BOUNCED, True),
        (Feedback.BOUNCED, Feedback.COMPLAINED, False),
        (Feedback.SOFT_BOUNCED, Feedback.AUTO_REPLIED, False),
        (Feedback.AUTO_REPLIED, Feedback.SOFT_BOUNCED, True),
    ],
)
def test_the_stronger_feedback_wins(
    new: Feedback, current: Feedback | None, expected: bool
) -> None:
    assert outranks(new, current) is expected


def test_stronger_feedbacks_are_those_a_guarded_update_keeps() -> None:
    for new in Feedback:
        kept = set(stronger_feedbacks(new))
        assert new in kept
        assert all(not outranks(new, current) for current in kept)
        assert all(outranks(new, other) for other in set(Feedback) - kept)


def test_an_automatic_reply_or_soft_bounce_does_not_end_a_sequence() -> None:
    assert Feedback.AUTO_REPLIED not in ENDS_SEQUENCE
    assert Feedback.SOFT_BOUNCED not in ENDS_SEQUENCE
    assert {Feedback.REPLIED, Feedback.BOUNCED, Feedback.COMPLAINED} <= ENDS_SEQUENCE
