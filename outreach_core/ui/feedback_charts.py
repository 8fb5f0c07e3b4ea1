"""What came back, charted: outcomes per day, engine and step, and the Replies table.

Plain functions (plotly and pandas, no streamlit), like `charts`: the page draws
`figure(frame)` and offers `csv_bytes(frame)`, so a CSV holds exactly what is shown. Every
text a recipient wrote (a reply's subject) stays a plain cell: the page draws it in a data
grid, never as markdown or HTML, and nothing in it becomes a link.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from outreach_core.domain.reply_figures import (
    FEEDBACK_LABELS,
    FEEDBACK_ORDER,
    FeedbackDay,
    FeedbackGroup,
    Reply,
)
from outreach_core.ui.charts import (
    DAILY_TICKS,
    DAY_MS,
    LAYOUT,
    empty_figure,
    stacked_group_figure,
    whole_counts,
)

#: one colour per outcome in every chart: answers in blues, bounces in the failure hues
FEEDBACK_COLORS = {
    "reply": "#0B5FA5",
    "auto-reply": "#8FB8DE",
    "hard bounce": "#C62828",
    "soft bounce": "#F29D0B",
    "complaint": "#7B3FA0",
}
#: the outcomes by label, in stacking order
LABEL_ORDER = [FEEDBACK_LABELS[f] for f in FEEDBACK_ORDER]


def _label(outcome: str) -> str:
    return FEEDBACK_LABELS.get(outcome, outcome)


# --- frames (the CSV columns) --------------------------------------------------------------


def feedback_day_frame(rows: list[FeedbackDay]) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.day.isoformat(), _label(r.outcome), r.count) for r in rows],
        columns=["day", "outcome", "count"],
    )


def feedback_group_frame(rows: list[FeedbackGroup], name: str) -> pd.DataFrame:
    return pd.DataFrame(
        [(r.group, _label(r.outcome), r.count) for r in rows], columns=[name, "outcome", "count"]
    )


#: the Replies table's columns (the CSV's names) and how the page heads them
REPLY_COLUMNS = ["at", "email", "subject", "workflow", "step", "evidence", "engine", "run_id"]
REPLY_HEADINGS = {
    "at": "When",
    "email": "Who answered",
    "workflow": "Workflow",
    "step": "Step",
    "subject": "Subject",
    "evidence": "Matched by",
    "engine": "Engine",
    "run_id": "Run",
}


def replies_frame(rows: list[Reply], tz: tzinfo) -> pd.DataFrame:
    """One row per reply, newest first, the time in the viewer's zone; every text column a
    plain string (a subject is shown as written, never interpreted)."""
    frame = pd.DataFrame([r.model_dump() for r in rows], columns=REPLY_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True).dt.tz_convert(tz)
    for column in ("email", "workflow", "subject", "evidence", "engine"):
        frame[column] = frame[column].astype("string")
    for column in ("step", "run_id"):
        frame[column] = frame[column].astype("Int64")
    return frame


# --- figures ---------------------------------------------------------------------------


def feedback_day_figure(frame: pd.DataFrame, zone_name: str, start: date, end: date) -> go.Figure:
    """Outcomes per local day, stacked by kind, over the whole range picked."""
    title = f"Replies, bounces and complaints per day ({zone_name})"
    if frame.empty:
        return empty_figure(title)
    outcomes = [o for o in LABEL_ORDER if o in set(frame["outcome"])]
    fig = px.bar(
        frame,
        x="day",
        y="count",
        color="outcome",
        color_discrete_map=FEEDBACK_COLORS,
        category_orders={"outcome": outcomes},
        labels={"day": f"Day ({zone_name})", "count": "Deliveries", "outcome": "Outcome"},
        title=title,
    )
    fig.update_layout(barmode="stack", **LAYOUT)
    days = (end - start).days + 1
    fig.update_xaxes(
        type="date",
        tickformat="%b %d",
        dtick=DAY_MS if days <= DAILY_TICKS else 7 * DAY_MS,
        tick0=datetime.combine(start, time(0)),
        tickangle=-45 if days > 10 else 0,
        range=[
            datetime.combine(start, time(0)) - timedelta(hours=18),
            datetime.combine(end, time(0)) + timedelta(hours=18),
        ],
    )
    fig.update_traces(width=0.8 * DAY_MS)
    whole_counts(fig, frame)
    return fig


def feedback_group_figure(frame: pd.DataFrame, name: str, title: str, axis: str) -> go.Figure:
    """A horizontal stacked bar per group (engine, step), in the frame's order, top down."""
    return stacked_group_figure(
        frame, name, title, axis, color="outcome", order=LABEL_ORDER, colors=FEEDBACK_COLORS,
        row_px=28,
    )  # fmt: skip
