"""Overview: what is set up, the latest runs, what to do next, and a button to send now."""

import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.services import compliance, preflight, results, schedules
from outreach_core.ui import charts
from outreach_core.ui.mailbox_views import failing_mailbox_warnings

ws = ui.workspace()
tz = ui.browser_timezone()


def ask_to_queue() -> None:
    """Button callback: nothing is queued yet; the pre-flight and the confirmation come first."""
    if not ui.require_role("sender"):
        return
    st.session_state["home_confirming"] = st.session_state["send_workflow"]
    st.session_state["home_confirm"] = False


def stop_asking() -> None:
    st.session_state.pop("home_confirming", None)


def queue_selected_workflow(workflow_id: int) -> None:
    """Confirmed: runs before the page draws, so the new run is in the table below."""
    stop_asking()
    if not ui.require_role("sender"):
        return
    try:
        run_id = services.queue_run(ws, workflow_id, trigger="dashboard", actor=ui.actor())
    except OutreachError as exc:
        st.session_state["send_feedback"] = ("error", str(exc))
    else:
        message = f"Run {run_id} queued: the scheduler daemon will send it."
        st.session_state["send_feedback"] = ("success", message)


overview = services.overview(ws)

st.title("Overview")
st.caption("What this workspace holds, what was sent lately, and what to do next.")


def complaints_reviewed(engine_id: int) -> None:
    """Button callback: the user reviewed the complaints; the engine may send again."""
    if ui.require_role("sender"):
        compliance.mark_complaints_reviewed(ws, engine_id, actor=ui.actor())


# Complaint brake: engines whose recipients mark too much mail as spam; their runs pause.
for braked in compliance.braked_engines(ws):
    st.error(
        f"Complaint brake: {braked}, above 0.1 %. Runs through this engine pause; review the "
        "list and the content before sending again.",
        icon=":material/report:",
    )
    st.button(
        f"Complaints of {braked.engine} reviewed: let it send again",
        key=f"complaints_reviewed_{braked.engine_id}",
        on_click=complaints_reviewed,
        args=(braked.engine_id,),
        disabled=not ui.can("sender"),
    )

# Engine mailboxes whose last read failed: bounces and replies wait, sending does not.
failing_mailbox_warnings(ws, tz)

counts = [
    ("Audiences", overview.audiences),
    ("Templates", overview.templates),
    ("Engines", overview.engines),
    ("Workflows", overview.workflows),
]
for column, (label, value) in zip(st.columns(4), counts, strict=True):
    column.metric(label, value, border=True)

# --- Deliveries of the last 7 and 30 days (outcome time, every workflow) -----------------
st.subheader("Deliveries")
kpis = results.kpis(ws)
for column, kpi in zip(st.columns(len(kpis)), kpis, strict=True):
    with column.container(border=True):
        st.markdown(f"**Last {kpi.days} days**")
        # two by two: four metrics side by side in half the page cut "100 %" to "100…"
        sent, failed = st.columns(2)
        skipped, rate = st.columns(2)
        sent.metric("Sent", kpi.sent, help="accepted by the engine")
        failed.metric("Failed", kpi.failed, help="failed + deferred + unknown")
        skipped.metric("Skipped", kpi.skipped, help="invalid, duplicate, suppressed, unrenderable")
        rate.metric("Delivery rate", charts.rate_label(kpi), help="sent / (sent + failed)")
        replies, bounces = st.columns(2)
        replies.metric(
            "Reply rate",
            charts.rate_label(kpi, "reply_rate"),
            help="replied / delivered, of the messages sent in the window; delivered = sent - "
            "hard bounces. Replies read from the engine's mailbox; automatic replies not counted",
        )
        bounces.metric(
            "Bounce rate",
            charts.rate_label(kpi, "bounce_rate"),
            help="hard bounces / sent, of the messages sent in the window (bounces reported by "
            "the engine's webhooks or read from its mailbox)",
        )
ui.csv_download(
    "Download KPIs as CSV",
    charts.csv_bytes(charts.kpi_frame(kpis)),
    file_name="kpis.csv",
    key="csv_kpis",
)
st.caption(
    "Charts per day, domain, engine and error, replies and bounces, and the full ledger: open "
    "**Results**; who answered: **Replies**."
)
# --- end of the deliveries block ------------------------------------------------------

st.subheader("Recent runs")
if overview.recent_runs:
    recent_frame = ui.recent_runs_frame(overview.recent_runs, tz)
    st.dataframe(recent_frame, hide_index=True, column_config=ui.recent_runs_column_config())
    ui.csv_download(
        "Download recent runs as CSV",
        charts.csv_bytes(recent_frame),
        file_name="recent-runs.csv",
        key="csv_recent_runs",
    )
    st.caption("Open **Runs** for a run's per-recipient ledger and its CSV.")
else:
    st.info("No runs yet. Queue one under **Send now**, or send a file from the command line.")

checklist_column, send_column = st.columns([3, 2], gap="large")

with checklist_column:
    st.subheader("Setup checklist")
    for item in ui.setup_checklist(overview):
        st.markdown(item.markdown())
        st.page_link(item.page, label=f"Open {item.link}", icon="➡️")
    with st.expander("Or from the command line"):
        st.code(ui.CLI_SEND_BLOCK, language="bash")
        st.caption("`make run` loads a demo workspace and starts the daemon.")

with send_column:
    st.subheader("Send now")
    workflows = services.list_workflows(ws)
    if not workflows:
        st.info("No workflow yet: the send command creates one, and `make run` loads a demo.")
    else:
        names = {w.id: w.name for w in workflows}
        chosen = st.selectbox(
            "Workflow", options=list(names), format_func=names.get, key="send_workflow"
        )
        if st.session_state.get("home_confirming") != chosen:
            st.button(
                "Queue run",
                type="primary",
                key="home_queue",
                on_click=ask_to_queue,  # enabled for everyone: the callback checks the role
                help="Checks the workflow first and asks you to confirm the count.",
            )
        else:
            with st.container(border=True):
                try:
                    result = preflight.workflow_preflight(ws, chosen)
                except OutreachError as exc:
                    ui.error_text(str(exc))
                    st.button("Cancel", key="home_cancel", on_click=stop_asking)
                else:
                    counts = ", ".join(f"{n} {status}" for status, n in result.counts.shown())
                    st.markdown(f"**Pre-flight of {ui.plain(names[chosen])}**")
                    st.caption(f"{counts} · open **Send** or **Dry run** for the rows")
                    ui.missing_variable_warnings(result.missing)
                    ui.confirm_send(
                        result,
                        key="home",
                        button="Queue run",
                        on_confirm=queue_selected_workflow,
                        args=(chosen,),
                        on_cancel=stop_asking,
                    )
    feedback = st.session_state.pop("send_feedback", None)
    if feedback:
        kind, message = feedback
        if kind == "success":
            st.success(message)
        else:
            ui.error_text(message)

# scheduler daemon status: whether anything will run the queued and scheduled runs
st.subheader("Scheduler daemon")
daemon_status = schedules.daemon_status(ws)
(st.success if daemon_status.healthy else st.warning)(str(daemon_status))
st.caption(
    "Schedules and queued runs are sent by `python scheduler_daemon.py` (see **Schedules**)."
)
