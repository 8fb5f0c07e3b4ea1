"""What came back, as pure figures: per-day and per-group rows, the rates, the funnel's last
two steps and the Replies search, tested without a database."""

from __future__ import annotations

from datetime import date

import pytest

from outreach_core.domain import reply_figures as figures
from outreach_core.domain.result_figures import FunnelStep, kpi


def test_days_keep_known_outcomes_in_day_and_stacking_order() -> None:
    """Verify rows are sorted by day then reply, auto-reply, hard, soft bounce, complaint;
    zero counts and outcomes this version does not know are left out."""
    d1, d2 = date(2026, 3, 2).toordinal(), date(2026, 3, 3).toordinal()
    rows = [(d2, "complained", 1), (d2, "replied", 2), (d1, "soft_bounced", 1),
            (d1, "bounced", 3), (d1, "mystery", 9), (d2, "auto_replied", 0)]  # fmt: skip

    found = [(r.day, r.outcome, r.count) for r in figures.feedback_days(rows)]

    assert found == [
        (date(2026, 3, 2), "bounced", 3),
        (date(2026, 3, 2), "soft_bounced", 1),
        (date(2026, 3, 3), "replied", 2),
        (date(2026, 3, 3), "complained", 1),
    ]


def test_groups_are_summed_biggest_first_and_a_missing_engine_is_named() -> None:
    """Verify rows of one group and outcome are added up, the group with most outcomes comes
    first (ties by name), and None becomes "(none)"."""
    rows = [("b", "replied", 1), ("a", "bounced", 1), (None, "replied", 1), ("b", "replied", 2),
            ("a", "replied", 2), ("c", "replied", 3)]  # fmt: skip

    found = [(g.group, g.outcome, g.count) for g in figures.feedback_groups(rows)]

    assert found == [
        ("a", "replied", 2),
        ("a", "bounced", 1),
        ("b", "replied", 3),
        ("c", "replied", 3),
        ("(none)", "replied", 1),
    ]


def test_steps_read_in_step_order_not_by_size() -> None:
    """Verify steps are listed 1, 2, ... 10 whatever their counts."""
    rows = [(10, "replied", 9), (2, "replied", 5), (1, "bounced", 1), (1, "replied", 1)]

    found = [(g.group, g.outcome) for g in figures.step_groups(rows)]

    assert found == [
        ("step 1", "replied"),
        ("step 1", "bounced"),
        ("step 2", "replied"),
        ("step 10", "replied"),
    ]


@pytest.mark.parametrize(
    ("sent", "bounced", "replied", "reply_rate", "bounce_rate"),
    [
        (100, 4, 12, 12 / 96, 0.04),  # delivered = sent - hard bounced
        (10, 0, 0, 0.0, 0.0),
        (5, 5, 0, None, 1.0),  # nothing delivered: no reply rate
        (0, 0, 0, None, None),  # nothing sent: no rate at all
    ],
)
def test_reply_rate_is_of_delivered_and_bounce_rate_of_sent(
    sent: int, bounced: int, replied: int, reply_rate: float | None, bounce_rate: float | None
) -> None:
    """Verify the rates as pure functions and as the Home KPI computes them."""
    assert figures.reply_rate(sent, bounced, replied) == reply_rate
    assert figures.bounce_rate(sent, bounced) == bounce_rate
    window = kpi(7, {"sent": sent}, {"bounced": bounced, "replied": replied, "complained": 1})
    assert (window.reply_rate, window.bounce_rate) == (reply_rate, bounce_rate)


def test_kpi_without_feedback_has_no_bounces_or_replies() -> None:
    """Verify a window nothing came back for has rates of zero, not missing ones."""
    window = kpi(30, {"sent": 4, "failed": 1})
    assert (window.bounced, window.replied, window.reply_rate, window.bounce_rate) == (
        0,
        0,
        0.0,
        0.0,
    )


def test_funnel_continues_sent_to_delivered_and_replied() -> None:
    """Verify delivered = sent - hard bounces (a complaint or soft bounce was delivered) and
    replied counts the deliveries whose outcome is a reply."""
    steps = [FunnelStep(step=s, count=n) for s, n in
             [("audience", 12), ("valid", 11), ("rendered", 11), ("sent", 10)]]  # fmt: skip
    came_back = {"bounced": 2, "replied": 3, "auto_replied": 1, "complained": 1, "soft_bounced": 1}

    found = [(s.step, s.count) for s in figures.outcome_funnel(steps, came_back)]

    assert found[-3:] == [("sent", 10), ("delivered", 8), ("replied", 3)]
    assert [s for s, _ in found[:4]] == ["audience", "valid", "rendered", "sent"]
    assert [(s.step, s.count) for s in figures.outcome_funnel([], {})] == [
        ("delivered", 0),
        ("replied", 0),
    ]


@pytest.mark.parametrize(
    ("text", "term"), [("  Ann@X.org ", "ann@x.org"), ("", None), ("   ", None), ("@", "@")]
)
def test_search_term_is_trimmed_and_lowercased(text: str, term: str | None) -> None:
    assert figures.search_term(text) == term


def test_evidence_is_said_in_words() -> None:
    assert figures.evidence_label("thread") == "in thread"
    assert figures.evidence_label("sender") == "by sender"
    assert figures.evidence_label(None) == ""
    assert figures.evidence_label("other") == "other"
