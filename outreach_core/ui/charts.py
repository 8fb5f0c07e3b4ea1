"""The Results charts and their tables: one frame per chart, drawn and downloaded as is.

Plain functions (plotly and pandas, no streamlit): the page draws `figure(frame)` and offers
`csv_bytes(frame)`, so the CSV holds exactly the numbers the chart shows. Frames carry engine
names only, never an engine URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from outreach_core.domain.csv_cells import neutralise_csv
from outreach_core.domain.result_figures import (
    OUTCOMES,
    DayCount,
    ErrorCount,
    FunnelStep,
    GroupCount,
    Kpi,
    LatencyRow,
    LedgerRow,
    outcome_order,
)

#: one colour per outcome, the same in every chart (colour-blind-safe hues, distinct in grey)
STATUS_COLORS = {
    "sent": "#1B7F3B",
    "failed": "#C62828",
    "deferred": "#F29D0B",
    "unknown": "#7B3FA0",
    "skipped": "#7C8C99",
    "cancelled": "#4A4A4A",
}
#: skipped reasons: greys and blues, so "skipped" reads as one family beside the outcomes
SKIP_SHADES = [
    "#7C8C99",
    "#A9B8C4",
    "#4F6272",
    "#5DA9D6",
    "#2B6C99",
    "#C9D3DB",
    "#93A7B5",
    "#35505F",
]
#: one day in milliseconds (a date axis' unit); days shown one label each up to DAILY_TICKS
DAY_MS = 86_400_000
DAILY_TICKS = 45
PERCENTILE_COLORS = {"p50": "#2B6C99", "p90": "#F29D0B", "p99": "#C62828"}

LAYOUT = {
    "template": "plotly_white",
    "legend_title_text": "",
    "margin": {"t": 60, "r": 20, "b": 40, "l": 60},
    "height": 380,
}


def outcome_colors(outcomes: list[str]) -> dict[str, str]:
    """Colours for outcomes as named in a chart: status colours, skipped reasons in shades."""
    colors: dict[str, str] = {}
    skipped = sorted(o for o in outcomes if o.startswith("skipped: "))
    for outcome in outcomes:
        colors[outcome] = STATUS_COLORS.get(outcome, "#999999")
    for i, outcome in enumerate(skipped):
        colors[outcome] = SKIP_SHADES[i % len(SKIP_SHADES)]
    return colors


# --- frames (the CSV columns) --------------------------------------------------------------


def rate_label(kpi: Kpi, rate: str = "delivery_rate") -> str:
    """`97.5%` (the KPI's `rate`: delivery_rate, reply_rate or bounce_rate), or an em dash
    when there is nothing to divide by."""
    value = getattr(kpi, rate)
    return "—" if value is None else f"{value:.1%}"


KPI_RATES = ("delivery_rate", "reply_rate", "bounce_rate")


def kpi_frame(kpis: list[Kpi]) -> pd.DataFrame:
    counts = ("days", "sent", "failed", "skipped", "bounced", "replied")
    return pd.DataFrame(
        [
            {c: getattr(k, c) for c in counts}
            | {r: None if getattr(k, r) is None else round(getattr(k, r), 4) for r in KPI_RATES}
            for k in kpis
        ],
        columns=[*counts, *KPI_RATES],
    )


def day_frame(rows: list[DayCount]) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.day.isoformat(), r.outcome, r.count) for r in rows], columns=["day", "outcome", "count"]
    )


def group_frame(rows: list[GroupCount], name: str) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.group, r.status, r.count) for r in rows], columns=[name, "status", "count"]
    )


def error_frame(rows: list[ErrorCount]) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.label, r.status, r.count) for r in rows],
        columns=["reply_code_or_reason", "status", "count"],
    )


def latency_frame(rows: list[LatencyRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.run_id, r.run, r.sends, r.p50, r.p90, r.p99) for r in rows],
        columns=["run_id", "run", "sends", "p50_ms", "p90_ms", "p99_ms"],
    )


def funnel_frame(steps: list[FunnelStep]) -> pd.DataFrame:
    return pd.DataFrame([(s.step, s.count) for s in steps], columns=["step", "count"])


#: how the ledger's columns are headed on the page (the CSV keeps the names)
LEDGER_HEADINGS = {
    "delivery_id": "Delivery",
    "run_id": "Run",
    "step": "Step",
    "workflow": "Workflow",
    "engine": "Engine",
    "email": "Email",
    "status": "State",
    "reason": "Reason",
    "reply_code": "Reply code",
    "attempts": "Attempts",
    "latency_ms": "Latency (ms)",
    "updated_at": "Outcome at",
    "sent_at": "Sent at",
    "feedback": "Reply / bounce",
    "feedback_at": "Reply / bounce at",
}
#: what a ledger table shows first: the address, its state and what came back (the reason,
#: wide, follows; the CSV keeps LEDGER_COLUMNS' order)
LEDGER_FIRST = ("email", "status", "feedback")
LEDGER_COLUMNS = [
    "delivery_id",
    "run_id",
    "step",
    "workflow",
    "engine",
    "email",
    "status",
    "reason",
    "reply_code",
    "attempts",
    "latency_ms",
    "updated_at",
    "sent_at",
    "feedback",
    "feedback_at",
]


def ledger_frame(rows: list[LedgerRow], tz: object) -> pd.DataFrame:
    """Ledger rows with times in the viewer's zone."""
    frame = pd.DataFrame([r.model_dump() for r in rows], columns=LEDGER_COLUMNS)
    for column in ("updated_at", "sent_at", "feedback_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_convert(tz)
    for column in ("reply_code", "latency_ms", "step"):
        frame[column] = frame[column].astype("Int64")
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as UTF-8 CSV with a header line and no index, formula-like cells neutralised."""
    # CRLF makes pandas quote a cell holding a bare CR (with "\n" it would not, and the cell
    # would split in two when read back); the rewrite ends lines with "\n"
    return neutralise_csv(frame.to_csv(index=False, lineterminator="\r\n")).encode("utf-8")


# --- figures ---------------------------------------------------------------------------


#: what an empty chart says, in place of axes that would mean nothing
NO_DATA = "No data yet for this range and filter"


def empty_figure(title: str) -> go.Figure:
    """A chart with nothing to show: its title and "no data yet", no axes or grid."""
    fig = go.Figure()
    fig.update_layout(title=title, **dict(LAYOUT, height=200))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=NO_DATA, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 16, "color": "#7C8C99"})  # fmt: skip
    return fig


def whole_counts(fig: go.Figure, frame: pd.DataFrame, axis: str = "y") -> None:
    """Counts are whole numbers: no 0.5 ticks on a small chart."""
    if not frame.empty and frame.groupby(list(frame.columns[:1]))["count"].sum().max() < 10:
        (fig.update_yaxes if axis == "y" else fig.update_xaxes)(dtick=1)


def day_figure(frame: pd.DataFrame, zone_name: str, start: date, end: date) -> go.Figure:
    """Stacked outcomes per local day; the x axis spans the whole range picked, so a quiet
    range shows its empty days instead of one bar stretched across the chart."""
    title = f"Outcomes per day ({zone_name})"
    if frame.empty:
        return empty_figure(title)
    outcomes = sorted(frame["outcome"].unique(), key=outcome_order)
    fig = px.bar(
        frame,
        x="day",
        y="count",
        color="outcome",
        color_discrete_map=outcome_colors(outcomes),
        category_orders={"outcome": outcomes},
        labels={"day": f"Day ({zone_name})", "count": "Deliveries", "outcome": "Outcome"},
        title=title,
    )
    fig.update_layout(barmode="stack", **LAYOUT)
    # every day labelled (a week apart past DAILY_TICKS days, where daily labels would
    # overlap), and most of a day of room either side so no bar sits on the edge
    first = datetime.combine(start, time(0)) - timedelta(hours=18)
    last = datetime.combine(end, time(0)) + timedelta(hours=18)
    days = (end - start).days + 1
    fig.update_xaxes(
        type="date",
        tickformat="%b %d",
        dtick=DAY_MS if days <= DAILY_TICKS else 7 * DAY_MS,
        tick0=datetime.combine(start, time(0)),
        tickangle=-45 if days > 10 else 0,
        range=[first, last],
    )
    # a date axis sizes bars from the gap between days; with one day there is none, so the
    # bar would be a hairline: give every bar 80% of a day (in ms, the axis' unit)
    fig.update_traces(width=0.8 * DAY_MS)
    whole_counts(fig, frame)
    return fig


def group_figure(frame: pd.DataFrame, name: str, title: str, axis: str) -> go.Figure:
    """A horizontal stacked bar per group (domain or engine), biggest on top."""
    return stacked_group_figure(
        frame, name, title, axis, color="status", order=OUTCOMES, colors=STATUS_COLORS
    )


def stacked_group_figure(
    frame: pd.DataFrame,
    name: str,
    title: str,
    axis: str,
    *,
    color: str,
    order: Sequence[str],
    colors: Mapping[str, str],
    row_px: int = 24,
) -> go.Figure:
    """A horizontal bar per group in the frame's order, top down, stacked by `color` (its
    values in `order`, coloured by `colors`), `row_px` pixels of height per group."""
    if frame.empty:
        return empty_figure(title)
    groups = list(dict.fromkeys(frame[name]))
    present = set(frame[color])
    fig = px.bar(
        frame,
        y=name,
        x="count",
        color=color,
        orientation="h",
        color_discrete_map=dict(colors),
        category_orders={name: groups, color: [v for v in order if v in present]},
        labels={name: axis, "count": "Deliveries", color: "Outcome"},
        title=title,
    )
    layout = dict(LAYOUT, height=max(260, 120 + row_px * len(groups)))
    fig.update_layout(barmode="stack", **layout)
    whole_counts(fig, frame, axis="x")
    return fig


def error_figure(frame: pd.DataFrame) -> go.Figure:
    title = "Reply codes and error reasons (failed, deferred, unknown)"
    if frame.empty:
        return empty_figure(title)
    statuses = [s for s in OUTCOMES if s in set(frame["status"])]
    fig = px.bar(
        frame,
        x="reply_code_or_reason",
        y="count",
        color="status",
        color_discrete_map=STATUS_COLORS,
        category_orders={"status": statuses},
        labels={
            "reply_code_or_reason": "Reply code (or reason when there is none)",
            "count": "Deliveries",
            "status": "Outcome",
        },
        title=title,
    )
    fig.update_layout(barmode="stack", **LAYOUT)
    fig.update_xaxes(type="category")
    whole_counts(fig, frame)
    return fig


def latency_figure(frame: pd.DataFrame) -> go.Figure:
    title = "Send latency per run (engine accept time)"
    if frame.empty:
        return empty_figure(title)
    fig = go.Figure()
    for column, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")):
        fig.add_trace(
            go.Scatter(
                x=frame["run"],
                y=frame[column],
                name=label,
                mode="lines+markers",
                line={"color": PERCENTILE_COLORS[label]},
            )
        )
    fig.update_layout(title=title, **LAYOUT)
    fig.update_xaxes(title_text="Run", type="category")
    fig.update_yaxes(title_text="Latency (ms)", rangemode="tozero")
    return fig


def funnel_figure(frame: pd.DataFrame, run_label: str) -> go.Figure:
    if frame.empty or not frame["count"].any():
        return empty_figure(f"Funnel of {run_label}")
    # delivered and replied in the feedback charts' colours (`feedback_charts`)
    colors = ["#4F6272", "#5DA9D6", "#2B6C99", STATUS_COLORS["sent"], "#2E9E5B", "#0B5FA5"]
    fig = go.Figure(
        go.Funnel(
            y=frame["step"],
            x=frame["count"],
            textinfo="value+percent initial",
            marker={"color": colors[: len(frame)]},
        )
    )
    fig.update_layout(title=f"Funnel of {run_label}", **LAYOUT)
    fig.update_yaxes(title_text="Step")
    fig.update_xaxes(title_text="Recipients")
    return fig
