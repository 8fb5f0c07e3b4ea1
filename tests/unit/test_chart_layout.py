"""Results charts: an empty chart says so without axes, the day axis labels every day with
room around the last bar, and the funnel opens on the newest run that sent."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from outreach_core.domain.result_figures import funnel_run
from outreach_core.ui import charts


def test_empty_charts_say_no_data_and_draw_no_axes() -> None:
    """Verify every chart over an empty frame shows the "no data yet" note and hides axes."""
    empties = [
        charts.day_figure(charts.day_frame([]), "UTC", date(2026, 12, 1), date(2026, 12, 5)),
        charts.group_figure(charts.group_frame([], "domain"), "domain", "By domain", "Domain"),
        charts.error_figure(charts.error_frame([])),
        charts.latency_figure(charts.latency_frame([])),
        charts.funnel_figure(pd.DataFrame({"step": ["audience"], "count": [0]}), "run 1"),
    ]
    for fig in empties:
        assert [a.text for a in fig.layout.annotations] == [charts.NO_DATA]
        assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_day_axis_labels_every_day_and_pads_the_last_bar() -> None:
    """Verify one tick per day and the range ending well after the last day's bar (which
    spans 0.4 day either side of its day)."""
    frame = pd.DataFrame({"day": ["2026-12-05"], "outcome": ["sent"], "count": [3]})
    fig = charts.day_figure(frame, "UTC", date(2026, 12, 1), date(2026, 12, 5))
    assert fig.layout.xaxis.dtick == charts.DAY_MS
    end = pd.Timestamp(fig.layout.xaxis.range[1])
    assert end - pd.Timestamp(datetime(2026, 12, 5)) >= pd.Timedelta(hours=0.4 * 24 + 6)
    long = charts.day_figure(frame, "UTC", date(2026, 9, 1), date(2026, 12, 5))
    assert long.layout.xaxis.dtick == 7 * charts.DAY_MS


def test_funnel_opens_on_the_newest_run_that_sent() -> None:
    """Verify the newest run with a send wins over newer empty runs; else the newest; None
    without runs."""
    assert funnel_run([9, 8, 7], {9: 0, 8: 5, 7: 3}) == 8
    assert funnel_run([9, 8], {9: 0, 8: 0}) == 9
    assert funnel_run([], {}) is None
