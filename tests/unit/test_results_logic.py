"""The Results decisions without a database: offset segments, top groups, percentiles,
the funnel, labels and the filter's validation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from outreach_core.adapters.store.ledger_queries import prefix_upper_bound
from outreach_core.domain import result_figures as figures


def test_local_days_follow_the_zones_midnights_across_dst() -> None:
    """Verify Paris days around the October 2026 change: the 25th lasts 25 hours."""
    days = figures.local_days(date(2026, 10, 24), date(2026, 10, 26), ZoneInfo("Europe/Paris"))
    assert days == [
        (date(2026, 10, 24).toordinal(), datetime(2026, 10, 23, 22, tzinfo=UTC),
         datetime(2026, 10, 24, 22, tzinfo=UTC)),
        (date(2026, 10, 25).toordinal(), datetime(2026, 10, 24, 22, tzinfo=UTC),
         datetime(2026, 10, 25, 23, tzinfo=UTC)),
        (date(2026, 10, 26).toordinal(), datetime(2026, 10, 25, 23, tzinfo=UTC),
         datetime(2026, 10, 26, 23, tzinfo=UTC)),
    ]  # fmt: skip


def test_local_days_in_a_half_hour_zone() -> None:
    [(_, start, end)] = figures.local_days(
        date(2026, 1, 15), date(2026, 1, 15), ZoneInfo("Asia/Kolkata")
    )
    assert (start, end) == (
        datetime(2026, 1, 14, 18, 30, tzinfo=UTC),
        datetime(2026, 1, 15, 18, 30, tzinfo=UTC),
    )


def test_local_midnight_is_the_utc_instant_the_day_begins() -> None:
    assert figures.local_midnight(date(2026, 7, 1), ZoneInfo("Europe/Paris")) == datetime(
        2026, 6, 30, 22, tzinfo=UTC
    )
    assert figures.local_midnight(date(2026, 1, 1), ZoneInfo("America/New_York")) == datetime(
        2026, 1, 1, 5, tzinfo=UTC
    )


def test_filter_scope_covers_whole_local_days() -> None:
    flt = figures.ResultsFilter(
        start=date(2026, 1, 10), end=date(2026, 1, 12), timezone="Asia/Tokyo"
    )
    scope = flt.scope()
    assert scope.start == datetime(2026, 1, 9, 15, tzinfo=UTC)
    assert scope.end == datetime(2026, 1, 12, 15, tzinfo=UTC)


def test_an_inverted_date_range_says_what_to_do() -> None:
    with pytest.raises(
        ValidationError, match=r"end \(2026-01-01\) is before the start \(2026-01-05\)"
    ):
        figures.ResultsFilter(start=date(2026, 1, 5), end=date(2026, 1, 1))


@pytest.mark.parametrize(
    ("buckets", "pct", "expected"),
    [
        ([(v, 1) for v in range(1, 101)], 50, 50),
        ([(v, 1) for v in range(1, 101)], 90, 90),
        ([(v, 1) for v in range(1, 101)], 99, 99),
        ([(v, 1) for v in range(1, 101)], 100, 100),
        ([(10, 9), (500, 1)], 90, 10),  # 9 of 10 at or below 10 ms
        ([(10, 9), (500, 1)], 91, 500),
        ([(7, 1)], 50, 7),
        ([(30, 2), (10, 2)], 50, 10),  # unsorted input
    ],
)
def test_percentile_is_the_nearest_rank(
    buckets: list[tuple[int, int]], pct: int, expected: int
) -> None:
    assert figures.percentile(buckets, pct) == expected


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        figures.percentile([], 50)


def test_top_groups_folds_the_rest_into_other_and_ignores_pending() -> None:
    rows = [
        ("a.com", "sent", 5),
        ("b.com", "sent", 3),
        ("b.com", "failed", 3),
        ("c.com", "sent", 1),
        ("d.com", "failed", 2),
        (None, "skipped", 4),
        ("a.com", "pending", 100),
    ]
    folded = figures.top_groups(rows, top=2, none_label="(none)")
    assert [(g.group, g.status, g.count) for g in folded] == [
        ("b.com", "failed", 3),
        ("b.com", "sent", 3),
        ("a.com", "sent", 5),
        ("(other)", "failed", 2),
        ("(other)", "sent", 1),
        ("(other)", "skipped", 4),
    ]


def test_funnel_steps() -> None:
    rows = [
        ("sent", None, 10),
        ("failed", "permanent", 2),
        ("skipped", "duplicate", 1),
        ("skipped", "no_mx", 2),
        ("skipped", "render_error", 3),
        ("skipped", "sent_recently", 4),
    ]
    assert [(s.step, s.count) for s in figures.funnel(rows)] == [
        ("audience", 22),
        ("valid", 19),
        ("rendered", 16),
        ("sent", 10),
    ]


def test_error_label_prefers_the_code() -> None:
    assert figures.error_label(550, "permanent") == "550"
    assert figures.error_label(None, "transient") == "transient"
    assert figures.error_label(None, "interrupted mid-send; not resent") == "interrupted mid-send"


def test_day_rows_are_ordered_by_day_then_stacking_order() -> None:
    day = date(2024, 10, 4).toordinal()
    rows = figures.day_counts(
        [(day, "skipped", 9), (day, "failed", 1), (day, "sent", 2), (day - 1, "sent", 1),
         (day, "pending", 5)],
        [(day, "no_mx", 4), (day, "duplicate", 5)],
    )  # fmt: skip
    assert [(r.day.isoformat(), r.outcome, r.count) for r in rows] == [
        ("2024-10-03", "sent", 1),
        ("2024-10-04", "sent", 2),
        ("2024-10-04", "failed", 1),
        ("2024-10-04", "skipped: duplicate", 5),
        ("2024-10-04", "skipped: no_mx", 4),
    ]


def test_cancelled_is_an_outcome_stacked_after_the_skipped_reasons() -> None:
    """Verify the charts show a cancelled run's unsent rows, after every skipped reason,
    by day and by group; pending is still no outcome."""
    day = date(2026, 12, 4).toordinal()
    rows = figures.day_counts(
        [(day, "cancelled", 7), (day, "sent", 2), (day, "pending", 5)], [(day, "no_mx", 4)]
    )
    assert [(r.outcome, r.count) for r in rows] == [
        ("sent", 2),
        ("skipped: no_mx", 4),
        ("cancelled", 7),
    ]
    groups = figures.top_groups(
        [("a.com", "cancelled", 3), ("a.com", "pending", 9)], none_label="(none)"
    )
    assert [(g.group, g.status, g.count) for g in groups] == [("a.com", "cancelled", 3)]


@pytest.mark.parametrize(("prefix", "bound"), [("ann", "ano"), ("a", "b"), ("x@y.", "x@y/")])
def test_prefix_upper_bound(prefix: str, bound: str) -> None:
    assert prefix_upper_bound(prefix) == bound
    assert prefix + "zzzz" < bound
