"""The charts and tables of what came back: empty states, one colour per outcome, the Replies
frame (times in the viewer's zone, subjects kept as written) and the KPI CSV's rates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from outreach_core.domain.reply_figures import FeedbackDay, FeedbackGroup, Reply
from outreach_core.domain.result_figures import Kpi
from outreach_core.ui import charts, feedback_charts


def test_empty_charts_say_no_data_and_draw_no_axes() -> None:
    """Verify the per-day, engine and step charts over nothing show the "no data yet" note."""
    empties = [
        feedback_charts.feedback_day_figure(
            feedback_charts.feedback_day_frame([]), "UTC", date(2026, 3, 1), date(2026, 3, 4)
        ),
        feedback_charts.feedback_group_figure(
            feedback_charts.feedback_group_frame([], "engine"), "engine", "By engine", "Engine"
        ),
    ]
    for fig in empties:
        assert [a.text for a in fig.layout.annotations] == [charts.NO_DATA]
        assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_outcomes_are_named_and_coloured_alike_in_every_chart() -> None:
    """Verify outcomes are labelled in words, stacked reply first, each in its own colour."""
    days = [FeedbackDay(day=date(2026, 3, 2), outcome=o, count=1)
            for o in ("complained", "bounced", "replied")]  # fmt: skip
    groups = [FeedbackGroup(group="step 1", outcome="soft_bounced", count=2),
              FeedbackGroup(group="step 1", outcome="auto_replied", count=1)]  # fmt: skip

    day = feedback_charts.feedback_day_figure(
        feedback_charts.feedback_day_frame(days), "UTC", date(2026, 3, 1), date(2026, 3, 4)
    )
    step = feedback_charts.feedback_group_figure(
        feedback_charts.feedback_group_frame(groups, "step"), "step", "By step", "Step"
    )

    assert [t.name for t in day.data] == ["reply", "hard bounce", "complaint"]
    assert [t.name for t in step.data] == ["auto-reply", "soft bounce"]
    for trace in [*day.data, *step.data]:
        assert trace.marker.color == feedback_charts.FEEDBACK_COLORS[trace.name]


def test_replies_frame_keeps_subjects_as_written_in_the_viewers_zone() -> None:
    """Verify the time is converted to the viewer's zone and a subject holding markdown, HTML
    and a formula stays the exact string (the CSV neutralises the formula)."""
    hostile = "=1+1 [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    row = Reply(delivery_id=1, run_id=2, workflow="wf", step=2, email="ann@example.org",
                at=datetime(2026, 3, 2, 23, 30, tzinfo=UTC), subject=hostile,
                evidence="in thread", engine="smtp")  # fmt: skip

    frame = feedback_charts.replies_frame([row], ZoneInfo("Europe/Paris"))

    assert list(frame.columns) == feedback_charts.REPLY_COLUMNS
    assert frame["subject"][0] == hostile
    assert frame["at"][0].isoformat() == "2026-03-03T00:30:00+01:00"
    assert int(frame["step"][0]) == 2
    text = charts.csv_bytes(frame).decode()
    assert "'=1+1 [x](javascript:alert(1))" in text
    assert feedback_charts.replies_frame([], UTC).empty


def test_kpi_csv_carries_the_reply_and_bounce_rates() -> None:
    """Verify the KPI frame: counts, then the three rates, empty where nothing divides."""
    frame = charts.kpi_frame(
        [
            Kpi(days=7, sent=10, failed=0, skipped=1, bounced=2, replied=4),
            Kpi(days=30, sent=0, failed=0, skipped=0),
        ]
    )

    assert list(frame.columns) == ["days", "sent", "failed", "skipped", "bounced", "replied",
                                   "delivery_rate", "reply_rate", "bounce_rate"]  # fmt: skip
    first = frame.iloc[0]
    assert (first["delivery_rate"], first["reply_rate"], first["bounce_rate"]) == (1.0, 0.5, 0.2)
    assert frame.iloc[1][["delivery_rate", "reply_rate", "bounce_rate"]].isna().all()
    assert (
        charts.rate_label(Kpi(days=7, sent=10, failed=0, skipped=0, replied=1), "reply_rate")
        == "10.0%"
    )
