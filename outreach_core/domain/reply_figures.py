"""What came back after sending: replies, auto-replies, bounces and complaints as Results and
Home show them, and the pure decisions on the grouped rows the store returns.

A delivery's outcome is its `feedback` (the strongest thing said about it, `domain.outcomes`)
and `feedback_at`; the charts count deliveries by that outcome on the day, engine and step it
came back. The rates are of the deliveries sent in a window: delivered = sent - hard bounced
(an engine accepted it and no permanent bounce came back), reply rate = replied / delivered,
bounce rate = hard bounced / sent. The Replies list reads the reply events themselves (one row
per answer, with its subject as plain text); automatic replies are counted, never listed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from pydantic import BaseModel

from outreach_core.domain.models import Feedback
from outreach_core.domain.result_figures import FunnelStep

#: outcomes the charts show, in stacking order: answers first, then bounces, then complaints
FEEDBACK_ORDER: tuple[str, ...] = (
    Feedback.REPLIED.value,
    Feedback.AUTO_REPLIED.value,
    Feedback.BOUNCED.value,
    Feedback.SOFT_BOUNCED.value,
    Feedback.COMPLAINED.value,
)
#: how each outcome is named on a chart, a table and a CSV
FEEDBACK_LABELS: dict[str, str] = {
    Feedback.REPLIED.value: "reply",
    Feedback.AUTO_REPLIED.value: "auto-reply",
    Feedback.BOUNCED.value: "hard bounce",
    Feedback.SOFT_BOUNCED.value: "soft bounce",
    Feedback.COMPLAINED.value: "complaint",
}
#: how a reply was tied to its delivery, as the Replies list says it
EVIDENCE_LABELS: dict[str, str] = {
    # its In-Reply-To or References named the message we sent
    "thread": "in thread",
    # no thread headers: it came from the recipient's address (weaker evidence)
    "sender": "by sender",
}
NO_ENGINE = "(none)"


class FeedbackDay(BaseModel):
    """Deliveries whose outcome of one kind came back on one local day."""

    day: date
    outcome: str
    count: int


class FeedbackGroup(BaseModel):
    """Deliveries of one group (an engine's name, `step 2`) with one outcome."""

    group: str
    outcome: str
    count: int


class FeedbackData(BaseModel):
    """Everything the Results page charts about what came back, for one filter."""

    by_day: list[FeedbackDay]
    by_engine: list[FeedbackGroup]
    by_step: list[FeedbackGroup]


class Reply(BaseModel):
    """One answer from a recipient, as the Replies list shows it (no link, no body)."""

    delivery_id: int
    run_id: int
    workflow: str
    step: int
    email: str
    at: datetime
    subject: str
    evidence: str
    engine: str


class RepliesList(BaseModel):
    """The newest replies matching a filter, how many matched, and the auto-replies of the
    same range (counted, not listed)."""

    rows: list[Reply]
    total: int
    auto_replies: int


# --- pure decisions ----------------------------------------------------------------------


def feedback_order(outcome: str) -> int:
    """Stacking position of an outcome (unknown ones last)."""
    return FEEDBACK_ORDER.index(outcome) if outcome in FEEDBACK_ORDER else len(FEEDBACK_ORDER)


def feedback_days(rows: Iterable[tuple[int, str, int]]) -> list[FeedbackDay]:
    """(day ordinal, feedback, n) as per-day rows, in day and stacking order; feedback this
    version does not know is left out."""
    kept = [
        FeedbackDay(day=date.fromordinal(d), outcome=f, count=n)
        for d, f, n in rows
        if f in FEEDBACK_ORDER and n
    ]
    return sorted(kept, key=lambda r: (r.day, feedback_order(r.outcome)))


def feedback_groups(
    rows: Iterable[tuple[str | None, str, int]], *, none_label: str = NO_ENGINE
) -> list[FeedbackGroup]:
    """(group, feedback, n) summed per group and outcome: the group with most outcomes
    first (ties by name), outcomes in stacking order."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for group, outcome, n in rows:
        if outcome in FEEDBACK_ORDER and n:
            counts[(group or none_label, outcome)] += n
    totals: dict[str, int] = defaultdict(int)
    for (group, _), n in counts.items():
        totals[group] += n
    return [
        FeedbackGroup(group=g, outcome=o, count=n)
        for (g, o), n in sorted(
            counts.items(), key=lambda kv: (-totals[kv[0][0]], kv[0][0], feedback_order(kv[0][1]))
        )
    ]


def step_label(step: int) -> str:
    """`step 1` (the workflow's own message), `step 2` (its first follow-up), ..."""
    return f"step {step}"


def step_groups(rows: Iterable[tuple[int, str, int]]) -> list[FeedbackGroup]:
    """(step, feedback, n) per step in step order (not by size: steps read as a sequence)."""
    grouped = feedback_groups((step_label(s), f, n) for s, f, n in rows)
    return sorted(grouped, key=lambda r: (int(r.group.split()[1]), feedback_order(r.outcome)))


def delivered(sent: int, bounced: int) -> int:
    """Sent deliveries no hard bounce came back for."""
    return max(0, sent - bounced)


def reply_rate(sent: int, bounced: int, replied: int) -> float | None:
    """replied / delivered; None when nothing was delivered."""
    reached = delivered(sent, bounced)
    return replied / reached if reached else None


def bounce_rate(sent: int, bounced: int) -> float | None:
    """hard bounced / sent; None when nothing was sent."""
    return bounced / sent if sent else None


def outcome_funnel(steps: Sequence[FunnelStep], feedback: Mapping[str, int]) -> list[FunnelStep]:
    """A run's funnel (audience → valid → rendered → sent) continued by what came back from its
    sent deliveries (`feedback`: their count per feedback): → delivered → replied."""
    sent = next((s.count for s in steps if s.step == "sent"), 0)
    bounced = feedback.get(Feedback.BOUNCED.value, 0)
    return [
        *steps,
        FunnelStep(step="delivered", count=delivered(sent, bounced)),
        FunnelStep(step="replied", count=feedback.get(Feedback.REPLIED.value, 0)),
    ]


def evidence_label(evidence: str | None) -> str:
    """How a reply was tied to its delivery, in words; the stored word when unknown."""
    if not evidence:
        return ""
    return EVIDENCE_LABELS.get(evidence, evidence)


def search_term(text: str) -> str | None:
    """What the Replies search looks for: the text trimmed and lowercased (addresses are
    stored normalised), None when empty."""
    term = text.strip().lower()
    return term or None
