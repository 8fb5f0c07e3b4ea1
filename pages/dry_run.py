"""Dry run: the whole pre-flight of a workflow or an audience, with progress. Nothing is sent."""

import pandas as pd
import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.services import preflight
from outreach_core.ui.spooled_downloads import streamed_csv_download

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
kind, target_id = choices[target]
if kind == "workflow":
    # the workflow's own options, as Send and the run use them
    skip_mx = next(w for w in services.list_workflows(ws) if w.id == target_id).options.skip_mx
    st.caption(
        "Checked with the workflow's options, as **Send** and the run check it: "
        + ("DNS skipped" if skip_mx else "DNS")
        + ", suppressions, its dedupe window and the template rendered for every row."
    )
else:
    skip_mx = st.checkbox("Skip the DNS check (syntax only)", key="dry_skip_mx")

if st.button("Run dry run", type="primary", key="dry_run"):
    bar = st.progress(0, text="checking addresses…")

    def show(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"checked {done} of {total} rows")

    try:
        if kind == "workflow":
            made: object = preflight.workflow_preflight(ws, target_id, progress=show)
        else:
            made = preflight.dry_run_audience(ws, target_id, skip_mx=skip_mx, progress=show)
        st.session_state["dry_report"] = (target, made)
    except OutreachError as exc:
        ui.error_text(str(exc))  # a row's render error may quote its values
    bar.empty()

stored = st.session_state.get("dry_report")
if stored is None or stored[0] != target:
    st.info("Press **Run dry run** to check every row.")
    st.stop()

if isinstance(stored[1], preflight.WorkflowPreflight):
    result: preflight.WorkflowPreflight = stored[1]
    ui.preflight_summary(result, key="dry_pre")
    ui.step_reach_table(result.steps)
    if result.dedupe_note:
        st.warning(result.dedupe_note, icon=":material/content_copy:")
    st.caption(f"{result.counts.total} rows · {result.looked_up} domains looked up in DNS")
    ui.unsubscribe_notes(services.workflow_unsubscribe_findings(ws, target_id))
    counts = result.counts.by_status
    records, columns = result.sample_records(), result.all_columns
    if any(n > preflight.SAMPLE_ROWS_PER_STATUS for n in counts.values()):
        st.caption(
            f"The table lists the first {preflight.SAMPLE_ROWS_PER_STATUS} rows of each status; "
            "the CSV holds every row."
        )
else:
    report = stored[1]
    counts = report.counts()
    shown_counts = [(label, n) for label, n in counts.items() if n or label == "valid"]
    for column, (label, value) in zip(st.columns(len(shown_counts)), shown_counts, strict=True):
        column.metric(label, value, border=True)
    st.caption(f"{len(report.records)} rows · {report.looked_up} domains looked up in DNS")
    records, columns = report.records, report.all_columns

present = [status for status, n in counts.items() if n]
statuses = st.multiselect("Statuses", present, default=present, key="dry_statuses")
table = pd.DataFrame(records, columns=columns)
table = table[table["status"].isin(statuses)]
ui.table(
    table,
    first=["email_normalized", "status", "reason"],
    labels={"email_normalized": "email (checked)"},
)
if isinstance(stored[1], preflight.WorkflowPreflight):
    chosen = set(statuses)
    streamed_csv_download(
        "Download CSV",
        lambda out: preflight.workflow_preflight(
            ws, target_id, out=out, samples_per_status=0, statuses=chosen
        ),
        file_name="dry-run.csv",
        key="dry_download",
    )
else:
    ui.csv_download("Download CSV", table, file_name="dry-run.csv", key="dry_download")
