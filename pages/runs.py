"""Runs: pick a run, see its counts and status, its per-recipient ledger, and download it."""

import streamlit as st

from outreach_core import reports, services, ui

ws = ui.workspace()
tz = ui.browser_timezone()

st.title("Runs")

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
    ("Deferred", counts.deferred, "temporary errors until the retries ran out"),
    ("Unknown", counts.unknown, "may or may not have gone out; not resent unless asked"),
    ("Skipped", counts.skipped, "never attempted: invalid, duplicate, suppressed, unrenderable"),
    ("Pending", counts.pending + counts.sending, "not sent yet (or being sent)"),
]
for column, (label, value, help_text) in zip(st.columns(len(metrics)), metrics, strict=True):
    column.metric(label, value, help=help_text, border=True)

st.subheader(f"Recipients ({counts.total})")
st.dataframe(
    ui.ledger_frame(reports.run_outcome_rows(ws, run_id), tz),
    hide_index=True,
    column_config=ui.ledger_column_config(),
    placeholder="—",
)
st.download_button(
    "Download CSV",
    data=lambda: reports.run_outcome_csv(ws, run_id),
    file_name=f"run-{run_id}.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",
)
