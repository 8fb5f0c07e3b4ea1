"""What a delivery's `feedback` becomes when a new event arrives: a pure precedence rule.

A delivery keeps the strongest thing said about it: a complaint outranks a hard bounce, which
outranks a reply (a reply after a bounce is someone else's mail), which outranks an automatic
reply, which outranks a soft bounce (a later answer shows the mail arrived after all).
"""

from __future__ import annotations

from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.models import Feedback

#: the delivery feedback each mailbox verdict records (OTHER records none)
FEEDBACK_OF_KIND: dict[FeedbackKind, Feedback] = {
    FeedbackKind.HARD_BOUNCE: Feedback.BOUNCED,
    FeedbackKind.SOFT_BOUNCE: Feedback.SOFT_BOUNCED,
    FeedbackKind.COMPLAINT: Feedback.COMPLAINED,
    FeedbackKind.AUTO_REPLY: Feedback.AUTO_REPLIED,
    FeedbackKind.REPLY: Feedback.REPLIED,
}

#: strongest first
_RANK: tuple[Feedback, ...] = (
    Feedback.COMPLAINED,
    Feedback.BOUNCED,
    Feedback.REPLIED,
    Feedback.AUTO_REPLIED,
    Feedback.SOFT_BOUNCED,
)

#: a follow-up step is not sent to a recipient whose previous delivery has one of these
ENDS_SEQUENCE: frozenset[Feedback] = frozenset(
    {Feedback.COMPLAINED, Feedback.BOUNCED, Feedback.REPLIED}
)


def outranks(new: Feedback, current: Feedback | None) -> bool:
    """Whether `new` replaces `current` as the delivery's feedback (an equal one does not, so
    the first time is kept)."""
    if current is None:
        return True
    return _RANK.index(new) < _RANK.index(current)


def stronger_feedbacks(new: Feedback) -> tuple[Feedback, ...]:
    """The feedbacks `new` must not replace, itself included (for a guarded UPDATE)."""
    return _RANK[: _RANK.index(new) + 1]
