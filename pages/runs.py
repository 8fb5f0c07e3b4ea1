"""Runs: pick a run, see its counts and status, its per-recipient ledger, and download it;
send its deferred (and, confirmed, its unknown) deliveries again."""

import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.domain.states import RunAction, allowed_actions
from outreach_core.services import run_summaries
from outreach_core.ui.spooled_downloads import streamed_csv_download

#: recipients the page lists (a run may have millions; the download holds them all)
RECIPIENTS_SHOWN = 1000

ws = ui.workspace()
tz = ui.browser_timezone()

st.title("Runs")
st.caption(
    "Every run with its counts and status, each recipient's outcome and reason, and the "
    "retry of deferred sends."
)

summaries = services.recent_runs(ws, limit=100)
if not summaries:
    st.info(
        f"No runs yet. Queue one from **Overview → Send now**, or send a file with `{ui.CLI_SEND}`."
    )
    st.stop()

by_id = {s.run.id: s for s in summaries}
run_id = st.selectbox(
    "Run", options=list(by_id), format_func=lambda i: ui.run_label(by_id[i], tz), key="run_id"
)
summary = by_id[run_id]
counts = summary.counts

st.markdown(ui.run_status_line(summary, tz))
metrics = [
    ("Sent", counts.sent, "accepted by the engine"),
    ("Failed", counts.failed, "refused for good"),
    (
        "Deferred",
        counts.deferred,
        f"temporary errors: {summary.retries_waiting} wait for their scheduled retry, the rest "
        "for a person's retry",
    ),
    ("Unknown", counts.unknown, "may or may not have gone out; not resent unless asked"),
    ("Skipped", counts.skipped, "never attempted: invalid, duplicate, suppressed, unrenderable"),
    ("Cancelled", counts.cancelled, "never attempted: the run was cancelled"),
    ("Pending", counts.pending + counts.sending, "not sent yet (or being sent)"),
]
for column, (label, value, help_text) in zip(st.columns(len(metrics)), metrics, strict=True):
    column.metric(label, value, help=help_text, border=True)


def retry(run_id: int, include_unknown: bool) -> None:
    """Button callback: put the rows back to pending, then send them in the background."""
    st.session_state.pop("retry_confirm", None)
    if not ui.require_role("sender"):
        return
    try:
        moved = services.retry_unsettled(
            ws, run_id, include_unknown=include_unknown, actor=ui.actor()
        )
    except OutreachError as exc:
        st.session_state["retry_feedback"] = ("error", str(exc))
        return
    if moved:
        services.execute_in_background(ws, run_id)
    st.session_state["retry_feedback"] = (
        "success",
        f"{moved} deliveries of run {run_id} are back to pending and being sent.",
    )


def ask_confirmation(run_id: int) -> None:
    st.session_state["retry_confirm"] = run_id


if summary.retries_waiting:
    st.subheader(f"Waiting for a retry ({summary.retries_waiting})")
    st.caption(
        "Refused for now (4xx): the daemon tries each again at its time, on a growing schedule, "
        f"for {summary.run.options.retry_lifetime_hours:g} h; then it fails as expired."
    )
    ui.table(ui.waiting_frame(run_summaries.waiting_deliveries(ws, run_id), tz), placeholder="—")

if counts.deferred or counts.unknown:
    retryable = RunAction.RETRY in allowed_actions(summary.run.status)
    deferred_column, unknown_column = st.columns(2)
    deferred_column.button(
        f"Retry deferred ({counts.deferred})",
        key="retry_deferred",
        disabled=not (retryable and counts.deferred),
        on_click=retry,
        args=(run_id, False),
        icon=":material/replay:",
        help="Send the rows whose temporary errors outlasted their attempts again.",
        width="stretch",
    )
    unknown_column.button(
        f"Retry deferred and unknown ({counts.deferred + counts.unknown})",
        key="retry_unknown",
        disabled=not (retryable and counts.unknown),
        on_click=ask_confirmation,
        args=(run_id,),
        icon=":material/warning:",
        help="Also resend rows that may have been delivered (you confirm first).",
        width="stretch",
    )
    if not retryable:
        st.caption("Retrying is possible once the run has completed or is paused.")
    if st.session_state.get("retry_confirm") == run_id:
        with st.container(border=True):
            st.warning(
                f"This sends {counts.deferred} deferred and {counts.unknown} unknown deliveries "
                "again. An unknown delivery may already have arrived: its recipient may get "
                "the message twice."
            )
            yes, no = st.columns(2)
            yes.button(
                f"Yes, resend {counts.deferred + counts.unknown}",
                key="retry_unknown_confirmed",
                type="primary",
                on_click=retry,
                args=(run_id, True),
                width="stretch",
            )
            no.button(
                "Cancel",
                key="retry_unknown_cancel",
                on_click=lambda: st.session_state.pop("retry_confirm", None),
                width="stretch",
            )
feedback = st.session_state.pop("retry_feedback", None)
if feedback:
    kind, message = feedback
    (st.success if kind == "success" else st.error)(message)

st.subheader(f"Recipients ({counts.total})")
ui.table(
    ui.ledger_frame(run_summaries.run_outcome_rows(ws, run_id, limit=RECIPIENTS_SHOWN), tz),
    column_config=ui.ledger_column_config(),
    placeholder="—",
    first=ui.LEDGER_FIRST,
)
if counts.total > RECIPIENTS_SHOWN:
    st.caption(f"The first {RECIPIENTS_SHOWN:,} recipients; the CSV holds every one.")
streamed_csv_download(
    "Download CSV",
    lambda out: run_summaries.write_run_outcomes(ws, run_id, out),
    file_name=f"run-{run_id}.csv",
)
