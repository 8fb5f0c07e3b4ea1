"""Send: a workflow's pre-flight, a confirmed "Send now", and the run's live progress.

The run executes in a background thread of this server process (the scheduler daemon may
claim it first; claiming is atomic). Progress is read from the database, never kept here.
"""

import streamlit as st

from outreach_core import OutreachError, RunStatus, services, ui
from outreach_core.domain.states import RunAction, allowed_actions
from outreach_core.services import preflight

ws = ui.workspace()
tz = ui.browser_timezone()

#: a run in these states goes on by itself: the page is redrawn once it leaves them
LIVE = (RunStatus.QUEUED, RunStatus.INITIALIZING, RunStatus.SENDING)


def send_now(workflow_id: int) -> None:
    """Button callback: queue a run, start executing it, watch it."""
    if not ui.require_role("sender"):
        return
    try:
        run_id = services.queue_run(ws, workflow_id, trigger="dashboard", actor=ui.actor())
    except OutreachError as exc:
        st.session_state["send_feedback"] = ("error", str(exc))
        return
    services.execute_in_background(ws, run_id)
    st.session_state["watch_run"] = run_id
    st.session_state["send_confirm"] = False  # one confirmation, one send
    st.session_state["send_feedback"] = ("success", f"Run {run_id} queued and sending.")


def act(action: RunAction, run_id: int) -> None:
    """Pause / Resume / Cancel callback."""
    if not ui.require_role("sender"):
        return
    try:
        if action == RunAction.PAUSE:
            services.pause_run(ws, run_id, actor=ui.actor())
        elif action == RunAction.CANCEL:
            services.cancel_run(ws, run_id, actor=ui.actor())
        else:
            services.resume_in_background(ws, run_id, actor=ui.actor())
    except OutreachError as exc:
        st.session_state["run_feedback"] = str(exc)


st.title("Send")
st.caption(
    "Check who a workflow will reach, confirm, and send. The run goes on in the background: "
    "leaving this page does not stop it."
)

workflows = services.list_workflows(ws)
if not workflows:
    st.info(
        "No workflow yet: create one on the Workflows page (the send command also makes one, "
        "and `make run` loads a demo)."
    )
    st.stop()

by_id = {w.id: w for w in workflows}
workflow_id = st.selectbox(
    "Workflow", options=list(by_id), format_func=lambda i: by_id[i].name, key="send_page_workflow"
)
workflow = by_id[workflow_id]

st.subheader("Pre-flight")
try:
    # the one pre-flight (the Dry run page and `dry-run` show the same counts)
    result = preflight.workflow_preflight(ws, workflow_id)
except OutreachError as exc:
    ui.error_text(str(exc))  # a row's render error may quote its values
    st.stop()
ui.preflight_summary(result, key="send_pre")
ui.step_reach_table(result.steps)
st.caption("Open **Dry run** for the row-by-row table with every column.")
# where the user decides to send: what unsubscribe the messages will lack (never blocks)
ui.unsubscribe_notes(services.workflow_unsubscribe_findings(ws, workflow_id))

st.subheader("Send now")
ui.confirm_send(
    result,
    key="send",
    button="Send now",
    on_confirm=send_now,
    args=(workflow_id,),
    disabled=not ui.can("sender"),
)
feedback = st.session_state.pop("send_feedback", None)
if feedback:
    kind, message = feedback
    if kind == "success":
        st.success(message)
    else:
        ui.error_text(message)

st.subheader("Progress")
summaries = {s.run.id: s for s in services.recent_runs(ws, limit=50)}
if not summaries:
    st.info("No runs yet: press **Send now** above.")
    st.stop()
if st.session_state.get("watch_run") not in summaries:
    st.session_state["watch_run"] = next(iter(summaries))
watched = st.selectbox(
    "Run",
    options=list(summaries),
    # no status in the label: a picker keeps the label it was first drawn with
    format_func=lambda i: (
        f"Run {i} · {summaries[i].workflow_name} · "
        f"created {ui.format_time(summaries[i].run.created_at, tz)}"
    ),
    key="watch_run",
)


@st.fragment(run_every=1)
def progress(run_id: int, drawn: RunStatus) -> None:
    """Re-read from the database every second (the executor writes it). When the run
    stopped (paused, completed, failed, cancelled) since the page was drawn, the whole
    page reruns once (the "queued and sending" note goes)."""
    summary = services.run_summary(ws, run_id)
    status, c = summary.run.status, summary.counts
    if status is not drawn and status not in LIVE:
        st.rerun(scope="app")
    # cancelled rows were never attempted: the bar stops where the run was cancelled
    done = c.total - c.pending - c.sending - c.cancelled
    if c.total:
        text = f"{done} of {c.total} recipients done · {status}"
        st.progress(round(100 * done / c.total), text=text)
    else:
        st.progress(0, text=f"preparing the recipients · {status}")
    waiting = summary.retries_waiting  # deferred, to be retried on their schedule
    metrics = [
        ("Sent", c.sent),
        ("Failed", c.unsettled - waiting),
        ("Retrying", waiting),
        ("Skipped", c.skipped),
        ("Cancelled", c.cancelled),
        ("Pending", c.pending + c.sending),
    ]
    for column, (label, value) in zip(st.columns(len(metrics)), metrics, strict=True):
        column.metric(label, value, border=True)
    st.markdown(ui.run_status_line(summary, tz))
    allowed = allowed_actions(status)
    pause, resume, cancel = st.columns(3)
    pause.button(
        "Pause",
        key="run_pause",
        disabled=RunAction.PAUSE not in allowed,
        on_click=act,
        args=(RunAction.PAUSE, run_id),
        icon=":material/pause:",
        width="stretch",
    )
    resume.button(
        "Resume",
        key="run_resume",
        disabled=RunAction.RESUME not in allowed,
        on_click=act,
        args=(RunAction.RESUME, run_id),
        icon=":material/play_arrow:",
        width="stretch",
    )
    cancel.button(
        "Cancel",
        key="run_cancel",
        disabled=RunAction.CANCEL not in allowed,
        on_click=act,
        args=(RunAction.CANCEL, run_id),
        icon=":material/cancel:",
        width="stretch",
    )
    error = st.session_state.pop("run_feedback", None)
    if error:
        ui.error_text(error)


progress(watched, summaries[watched].run.status)
