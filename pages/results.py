"""Results: outcomes over time, by domain, engine and error; latency; what came back (replies,
bounces, complaints) per day, engine and step; a run's funnel to replied; the ledger."""

from datetime import datetime, timedelta

import streamlit as st

from outreach_core import services, ui
from outreach_core.domain.result_figures import OUTCOMES, ResultsFilter
from outreach_core.services import replies, results
from outreach_core.ui import charts, feedback_charts

ws = ui.workspace()
tz = ui.browser_timezone()
zone_name = getattr(tz, "key", "UTC")


def chart(figure: object, frame: object, file_name: str, key: str) -> None:
    """A chart with its data as CSV right below it."""
    st.plotly_chart(figure, key=f"chart_{key}")
    ui.csv_download("Download CSV", charts.csv_bytes(frame), file_name=file_name, key=f"csv_{key}")


st.title("Results")
st.caption(f"What went out, what failed and why. Days are in your time zone, {zone_name}.")

today = datetime.now(tz).date()
dates_col, workflow_col, engine_col = st.columns([2, 2, 2])
picked = dates_col.date_input(
    "Dates", value=(today - timedelta(days=29), today), max_value=today, key="results_dates"
)
workflows = {w.id: w.name for w in services.list_workflows(ws)}
engines = {e.id: e.name for e in services.list_engines(ws)}
workflow_id = workflow_col.selectbox(
    "Workflow",
    [None, *workflows],
    format_func=lambda i: "All" if i is None else workflows[i],
    key="results_workflow",
)
engine_id = engine_col.selectbox(
    "Engine",
    [None, *engines],
    format_func=lambda i: "All" if i is None else engines[i],
    key="results_engine",
)
if not isinstance(picked, tuple) or len(picked) != 2:
    st.info("Pick the last day of the range too.")
    st.stop()

flt = ResultsFilter(
    start=picked[0], end=picked[1], timezone=zone_name, workflow_id=workflow_id, engine_id=engine_id
)
data = results.load(ws, flt)

frame = charts.day_frame(data.by_day)
chart(charts.day_figure(frame, zone_name, flt.start, flt.end), frame, "outcomes-per-day.csv", "day")
domain_col, engine_col = st.columns(2)
with domain_col:
    frame = charts.group_frame(data.by_domain, "domain")
    chart(charts.group_figure(frame, "domain", "Outcome by recipient domain (top 20)", "Domain"),
          frame, "outcomes-by-domain.csv", "domain")  # fmt: skip
with engine_col:
    frame = charts.group_frame(data.by_engine, "engine")
    chart(charts.group_figure(frame, "engine", "Outcome by engine", "Engine"), frame,
          "outcomes-by-engine.csv", "engine")  # fmt: skip
errors_col, latency_col = st.columns(2)
with errors_col:
    frame = charts.error_frame(data.errors)
    chart(charts.error_figure(frame), frame, "errors.csv", "errors")
with latency_col:
    frame = charts.latency_frame(data.latency)
    chart(charts.latency_figure(frame), frame, "latency-per-run.csv", "latency")

st.subheader("What came back")
st.caption(
    "Replies, automatic replies, hard and soft bounces and complaints, on the day they came "
    "back. Each delivery counts once, under the strongest: a complaint over a hard bounce over "
    "a reply over an automatic reply over a soft bounce. Who answered: **Replies**."
)
came_back = replies.load_feedback(ws, flt)
frame = feedback_charts.feedback_day_frame(came_back.by_day)
chart(feedback_charts.feedback_day_figure(frame, zone_name, flt.start, flt.end), frame,
      "came-back-per-day.csv", "feedback_day")  # fmt: skip
engine_col, step_col = st.columns(2)
with engine_col:
    frame = feedback_charts.feedback_group_frame(came_back.by_engine, "engine")
    chart(feedback_charts.feedback_group_figure(frame, "engine", "What came back by engine",
          "Engine"), frame, "came-back-by-engine.csv", "feedback_engine")  # fmt: skip
with step_col:
    frame = feedback_charts.feedback_group_frame(came_back.by_step, "step")
    chart(feedback_charts.feedback_group_figure(frame, "step", "What came back by workflow step",
          "Step"), frame, "came-back-by-step.csv", "feedback_step")  # fmt: skip

st.subheader("One run's funnel")
st.caption(
    "audience → valid address → rendered → sent → delivered (sent less hard bounces) → replied"
)
if data.runs:
    labels = dict(data.runs)
    newest_that_sent = results.default_funnel_run(ws, list(labels))
    run_id = st.selectbox(
        "Run",
        list(labels),
        index=list(labels).index(newest_that_sent) if newest_that_sent in labels else 0,
        format_func=labels.get,
        key="funnel_run",
    )
    frame = charts.funnel_frame(results.run_funnel(ws, run_id))
    chart(charts.funnel_figure(frame, labels[run_id]), frame, f"funnel-run-{run_id}.csv", "funnel")
else:
    st.info("No run was created in this range.")

st.subheader("Ledger")
search_col, status_col, reason_col, page_col = st.columns([3, 2, 2, 1])
prefix = search_col.text_input("Email starts with", key="ledger_search")
status = status_col.selectbox("State", [None, *OUTCOMES, "pending", "sending"],
                              format_func=lambda s: s or "All", key="ledger_status")  # fmt: skip
reason_options = [None, *results.reason_kinds(ws, flt, status=status)]
reason = reason_col.selectbox("Reason", reason_options,
                              format_func=lambda r: r or "All", key="ledger_reason")  # fmt: skip
page_no = page_col.number_input("Page", min_value=1, value=1, step=1, key="ledger_page")
page = results.ledger(ws, flt, email_prefix=prefix, status=status, reason=reason, page=page_no)
ledger = charts.ledger_frame(page.rows, tz)
ui.table(ledger, placeholder="—", labels=charts.LEDGER_HEADINGS, first=ui.LEDGER_FIRST)
st.caption(f"Page {page.page} of {page.pages} · {page.total} deliveries match, newest first.")
ui.csv_download("Download this page as CSV", charts.csv_bytes(ledger),
                file_name=f"ledger-page-{page.page}.csv", key="csv_ledger")  # fmt: skip

st.subheader("One recipient's history")
email = st.text_input("Email address", key="history_email")
if email.strip():
    history = charts.ledger_frame(results.recipient_history(ws, email), tz)
    if history.empty:
        st.info("No delivery to this address in any run.")
    else:
        ui.table(history, placeholder="—", labels=charts.LEDGER_HEADINGS, first=ui.LEDGER_FIRST)
        ui.csv_download("Download history as CSV", charts.csv_bytes(history),
                        file_name="recipient-history.csv", key="csv_history")  # fmt: skip
