"""Dry run: the whole pre-flight of a workflow or an audience, with progress. Nothing is sent."""

import pandas as pd
import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.services import preflight

ws = ui.workspace()

st.title("Dry run")
st.caption(
    "Who exactly will get this, and which addresses are bad? Syntax, duplicates, suppressions, "
    "rendering and each domain's mail servers (DNS) are checked. Nothing is sent."
)

choices: dict[str, tuple[str, int]] = {}
for workflow in services.list_workflows(ws):
    choices[f"Workflow: {workflow.name}"] = ("workflow", workflow.id)
for audience in services.list_audiences(ws):
    choices[f"Audience: {audience.name}"] = ("audience", audience.id)
if not choices:
    st.info("Nothing to check yet: import an audience on the **Audiences** page first.")
    st.stop()

target = st.selectbox("Check", list(choices), key="dry_target")
skip_mx = st.checkbox("Skip the DNS check (syntax only)", key="dry_skip_mx")

if st.button("Run dry run", type="primary", key="dry_run"):
    bar = st.progress(0, text="checking addresses…")

    def show(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"checked {done} of {total} rows")

    kind, target_id = choices[target]
    try:
        run = preflight.dry_run_workflow if kind == "workflow" else preflight.dry_run_audience
        st.session_state["dry_report"] = (
            target,
            run(ws, target_id, skip_mx=skip_mx, progress=show),
        )
    except OutreachError as exc:
        st.error(ui.plain(str(exc)))  # a row's render error may quote its values
    bar.empty()

stored = st.session_state.get("dry_report")
if stored is None or stored[0] != target:
    st.info("Press **Run dry run** to check every row.")
    st.stop()

report: preflight.DryRunReport = stored[1]
counts = report.counts()
shown_counts = [(label, n) for label, n in counts.items() if n or label == "valid"]
for column, (label, value) in zip(st.columns(len(shown_counts)), shown_counts, strict=True):
    column.metric(label, value, border=True)
st.caption(f"{len(report.records)} rows · {report.looked_up} domains looked up in DNS")
if choices[target][0] == "workflow":
    ui.unsubscribe_notes(services.workflow_unsubscribe_findings(ws, choices[target][1]))

present = [status for status, n in counts.items() if n]
statuses = st.multiselect("Statuses", present, default=present, key="dry_statuses")
table = pd.DataFrame(report.records, columns=report.all_columns)
table = table[table["status"].isin(statuses)]
ui.table(
    table,
    first=["email_normalized", "status", "reason"],
    labels={"email_normalized": "email (checked)"},
)
ui.csv_download("Download CSV", table, file_name="dry-run.csv", key="dry_download")
