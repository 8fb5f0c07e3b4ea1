"""Replies: who answered, when, to which workflow and step. The messages stay in the mailbox."""

from datetime import datetime, timedelta

import streamlit as st

from outreach_core import services, ui
from outreach_core.domain.result_figures import ResultsFilter
from outreach_core.services import replies
from outreach_core.ui import charts, feedback_charts

ws = ui.workspace()
tz = ui.browser_timezone()
zone_name = getattr(tz, "key", "UTC")

st.title("Replies")
st.caption(
    "Who answered, read from each engine's mailbox, newest first. The messages stay in the "
    f"mailbox: open it in your mail client to read them. Times are in your time zone, {zone_name}."
)

today = datetime.now(tz).date()
dates_col, workflow_col, search_col = st.columns([2, 2, 2])
picked = dates_col.date_input(
    "Dates", value=(today - timedelta(days=29), today), max_value=today, key="replies_dates"
)
workflows = {w.id: w.name for w in services.list_workflows(ws)}
workflow_id = workflow_col.selectbox(
    "Workflow",
    [None, *workflows],
    format_func=lambda i: "All" if i is None else workflows[i],
    key="replies_workflow",
)
search = search_col.text_input("Address contains", key="replies_search")
if not isinstance(picked, tuple) or len(picked) != 2:
    st.info("Pick the last day of the range too.")
    st.stop()

flt = ResultsFilter(start=picked[0], end=picked[1], timezone=zone_name, workflow_id=workflow_id)
found = replies.list_replies(ws, flt, search=search)

answered, automatic = st.columns(2)
answered.metric("Replies", found.total, help="answers from a person, one per message")
automatic.metric(
    "Automatic replies",
    found.auto_replies,
    help="out-of-office and other automatic answers: counted here, not listed as replies",
)
if not found.rows:
    st.info("No reply in this range and filter yet.")
else:
    frame = feedback_charts.replies_frame(found.rows, tz)
    ui.table(
        frame,
        labels=feedback_charts.REPLY_HEADINGS,
        first=["at"],
        column_config={
            "at": st.column_config.DatetimeColumn(
                feedback_charts.REPLY_HEADINGS["at"], format="YYYY-MM-DD HH:mm z"
            ),
            "subject": st.column_config.TextColumn(
                feedback_charts.REPLY_HEADINGS["subject"],
                width="medium",
                help="as the reply's Subject header says it; the message stays in the mailbox",
            ),
            "evidence": st.column_config.TextColumn(
                feedback_charts.REPLY_HEADINGS["evidence"],
                help="in thread: the reply's In-Reply-To or References names our message; by "
                "sender: it came from the recipient's address without them",
            ),
            "run_id": None,  # in the CSV, not on screen
        },
    )
    if found.total > len(found.rows):
        st.caption(f"The newest {len(found.rows)} of {found.total} replies.")
    ui.csv_download("Download replies as CSV", charts.csv_bytes(frame),
                    file_name="replies.csv", key="csv_replies")  # fmt: skip
