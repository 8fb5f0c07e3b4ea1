"""The Workflows page's follow-up steps editor, and the Send page's reach per step.

Steps 2 to 5 of the picked workflow: each on or off, its template, its days after the step
before and whether it continues the thread. One save replaces them (`services.follow_ups`);
a problem (a gap, no template) is shown and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.steps import MAX_STEPS, StepDefinition
from outreach_core.errors import OutreachError
from outreach_core.services import follow_ups
from outreach_core.services.follow_ups import StepReach
from outreach_core.ui.auth import actor, require_role
from outreach_core.ui.preflight_views import error_text

FOLLOW_UPS = range(2, MAX_STEPS + 1)
#: the days a new step is sent after the one before, by default
DEFAULT_DAYS = 3


def _key(field: str, step: int) -> str:
    return f"wfs_{field}_{step}"


def _load(ws: Workspace, workflow_id: int) -> None:
    """Fill the editor with the workflow's saved steps."""
    saved = {s.step: s for s in follow_ups.list_steps(ws, workflow_id)}
    for number in FOLLOW_UPS:
        step = saved.get(number)
        st.session_state[_key("on", number)] = step is not None
        st.session_state[_key("template", number)] = step.template_id if step else None
        st.session_state[_key("days", number)] = step.delay_days if step else DEFAULT_DAYS
        st.session_state[_key("thread", number)] = step.thread if step else True
    st.session_state["wfs_loaded_for"] = workflow_id
    st.session_state.pop("wfs_error", None)


def _save(ws: Workspace, workflow_id: int) -> None:
    """Submit callback: the steps switched on, saved as a whole."""
    if not require_role("sender"):
        return
    steps = []
    for number in FOLLOW_UPS:
        if not st.session_state.get(_key("on", number)):
            continue
        template_id = st.session_state.get(_key("template", number))
        if template_id is None:
            st.session_state["wfs_error"] = f"Step {number}: choose its template."
            return
        steps.append(
            StepDefinition(
                step=number,
                template_id=template_id,
                delay_days=int(st.session_state.get(_key("days", number)) or DEFAULT_DAYS),
                thread=bool(st.session_state.get(_key("thread", number))),
            )
        )
    try:
        saved = follow_ups.save_steps(ws, workflow_id, steps, actor=actor())
    except OutreachError as exc:
        st.session_state["wfs_error"] = str(exc)
        return
    st.session_state["wfs_feedback"] = (
        f"{len(saved)} follow-up step{'s' if len(saved) != 1 else ''} saved."
        if saved
        else "No follow-up: the workflow sends its own message only."
    )
    _load(ws, workflow_id)


def steps_editor(ws: Workspace, workflow_id: int, templates: dict[int, str]) -> None:
    """The picked workflow's follow-up steps, editable."""
    if st.session_state.get("wfs_loaded_for") != workflow_id:
        _load(ws, workflow_id)
    st.subheader("Follow-up steps")
    st.caption(
        "Step 1 is the workflow's own message. Step N+1 goes the given number of days after "
        "step N (counted in the workflow's time zone, inside its send window) to the "
        "recipients of step N who have not replied, bounced, complained or unsubscribed. "
        "Continuing the thread sends it as a reply (`Re:` the subject before), from the same "
        "engine while it has quota."
    )
    feedback = st.session_state.pop("wfs_feedback", None)
    if feedback:
        st.success(feedback)
    if "wfs_error" in st.session_state:
        error_text(st.session_state["wfs_error"])
    with st.form("steps_form", border=True):
        for number in FOLLOW_UPS:
            on, template, days, thread = st.columns([1, 3, 2, 2], vertical_alignment="bottom")
            on.checkbox(f"Step {number}", key=_key("on", number))
            template.selectbox(
                "Template",
                options=list(templates),
                format_func=templates.get,
                index=None,
                placeholder="Choose a template",
                key=_key("template", number),
            )
            days.number_input(
                f"Days after step {number - 1}",
                min_value=1,
                max_value=365,
                step=1,
                key=_key("days", number),
            )
            thread.checkbox("Continue the thread", key=_key("thread", number))
        st.form_submit_button(
            "Save steps",
            on_click=_save,
            args=(ws, workflow_id),
            icon=":material/save:",
        )


def reach_frame(rows: Sequence[StepReach]) -> pd.DataFrame:
    """The reach of each step as a table."""
    return pd.DataFrame(
        [
            {
                "Step": r.step,
                "When": "now"
                if r.delay_days is None
                else f"{r.delay_days} days after step {r.step - 1}",
                "Thread": "" if r.step == 1 else ("same (Re:)" if r.thread else "new"),
                "Recipients": r.reach,
                "Note": r.note,
            }
            for r in rows
        ],
        columns=["Step", "When", "Thread", "Recipients", "Note"],
    ).astype({"Recipients": "Int64"})


def step_reach_table(rows: Sequence[StepReach]) -> None:
    """How many recipients each step will reach, from the pre-flight (nothing drawn for a
    one-step workflow)."""
    if len(rows) < 2:
        return
    st.markdown("**Recipients per step**")
    st.dataframe(reach_frame(rows), hide_index=True)
