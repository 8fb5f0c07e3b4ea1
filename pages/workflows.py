"""Workflows: audience + template + engine(s) + options, under a stable key.

One form creates a workflow or edits the one picked. Each problem is shown under its field and
nothing is saved until every field is usable.
"""

import streamlit as st

from outreach_core import FieldErrors, OutreachError, services, ui
from outreach_core.domain.cadence import common_zones
from outreach_core.domain.forms import FIELDS, WORKFLOW_HELP, form_values
from outreach_core.services import preflight

ws = ui.workspace()
tz = ui.browser_timezone()
catalog = services.workflow_catalog(ws)
by_id = {w.id: w for w in catalog.workflows}
NEW = 0
HELP = WORKFLOW_HELP
ZONES = common_zones()


def state_key(field: str) -> str:
    return f"wf_{field}"


def load_form() -> None:
    """Fill the form with the picked workflow's values (or a new workflow's defaults)."""
    picked = by_id.get(st.session_state.get("wf_pick", NEW))
    for field, value in form_values(picked).items():
        st.session_state[state_key(field)] = value
    st.session_state.pop("wf_errors", None)


def save() -> None:
    """Submit callback: one call into the core; errors by field, or the saved workflow picked."""
    if not ui.require_role("sender"):
        return
    picked = st.session_state.get("wf_pick", NEW) or None
    values = {field: st.session_state.get(state_key(field)) for field in FIELDS}
    try:
        saved = services.save_workflow_form(ws, values, workflow_id=picked, actor=ui.actor())
    except FieldErrors as exc:
        st.session_state["wf_errors"] = exc.errors
        return
    except OutreachError as exc:
        st.session_state["wf_errors"] = {"form": str(exc)}
        return
    verb = "updated" if picked else "created"
    st.session_state["wf_feedback"] = (
        f"Workflow **{ui.plain(saved.name)}** {verb} (key `{saved.key}`)."
    )
    st.session_state["wf_pick"] = saved.id
    by_id[saved.id] = saved
    load_form()


def delete(workflow_id: int) -> None:
    if not ui.require_role("sender"):
        return
    try:
        services.delete_workflow(ws, workflow_id, actor=ui.actor())
    except OutreachError as exc:
        st.session_state["wf_errors"] = {"form": str(exc)}
        return
    st.session_state["wf_feedback"] = "Workflow deleted."
    st.session_state["wf_pick"] = NEW
    by_id.pop(workflow_id, None)
    load_form()


st.title("Workflows")
st.caption(
    "A workflow is what a run sends: an audience, a template, one or more engines and the "
    "options below. Its key names it for the CLI and schedules and survives a rename."
)

if catalog.workflows:
    st.dataframe(
        ui.workflows_frame(catalog, tz),
        hide_index=True,
        column_config={
            "Engines": st.column_config.TextColumn(width="medium"),
            "Last run": st.column_config.TextColumn(width="medium"),
        },
    )
else:
    st.info("No workflow yet: create one below.")

missing = [
    what
    for what, items in (
        ("an audience (Audiences page)", catalog.audiences),
        ("a template (Templates page)", catalog.templates),
        ("an engine (Engines page)", catalog.engines),
    )
    if not items
]
if missing:
    st.warning("A workflow needs " + ", ".join(missing) + " first.")
    st.stop()

if state_key("name") not in st.session_state or st.session_state.get("wf_pick") not in (
    NEW,
    *by_id,
):
    st.session_state["wf_pick"] = NEW
    load_form()

st.subheader("Create or edit")
picked = st.selectbox(
    "Workflow",
    options=[NEW, *by_id],
    format_func=lambda i: "New workflow" if i == NEW else f"{by_id[i].name} ({by_id[i].key})",
    key="wf_pick",
    on_change=load_form,
)
errors: dict[str, str] = st.session_state.get("wf_errors", {})
feedback = st.session_state.pop("wf_feedback", None)
if feedback:
    st.success(feedback)
if errors:
    ui.error_text(errors.get("form", "Nothing was saved: fix the fields marked below."))
if picked:
    # the saved workflow's, so they show after a save too; they inform, never block
    ui.missing_variable_warnings(preflight.workflow_missing_variables(ws, picked))
    ui.unsubscribe_notes(services.workflow_unsubscribe_findings(ws, picked))


def problem(field: str) -> None:
    """The field's error, right under it (as text: it may quote what was typed)."""
    if field in errors:
        ui.error_text(errors[field])


audiences = {a.id: f"{a.name} ({a.row_count} rows)" for a in catalog.audiences}
templates = {t.id: f"{t.name} (v{t.version})" for t in catalog.templates}
engines = {e.id: ui.engine_label(e) for e in catalog.engines}
# a chosen engine that has gone meanwhile stays listed, so its error can be shown beside it
for gone in st.session_state.get(state_key("engine_ids")) or []:
    engines.setdefault(gone, f"engine {gone} (not found)")

with st.form("workflow_form", border=True):
    name_column, key_column = st.columns(2)
    with name_column:
        st.text_input("Name", key=state_key("name"))
        problem("name")
    with key_column:
        st.text_input(
            "Key",
            key=state_key("key"),
            placeholder="made from the name, e.g. weekly-digest",
            help="Lowercase letters, digits and dashes. Leave blank to make it from the name.",
        )
        problem("key")
    audience_column, template_column = st.columns(2)
    with audience_column:
        st.selectbox(
            "Audience",
            options=list(audiences),
            format_func=audiences.get,
            index=None,
            placeholder="Choose an audience",
            key=state_key("audience_id"),
        )
        problem("audience_id")
    with template_column:
        st.selectbox(
            "Template",
            options=list(templates),
            format_func=templates.get,
            index=None,
            placeholder="Choose a template",
            key=state_key("template_id"),
        )
        problem("template_id")
    st.multiselect(
        "Engines, in order of preference",
        options=list(engines),
        format_func=engines.get,
        placeholder="Choose one or more engines",
        key=state_key("engine_ids"),
    )
    st.caption(
        "With several engines, sends rotate across them by remaining daily quota; each keeps "
        "its own limits (Engines page). When all are used up for the day, the run pauses and "
        "goes on the next day."
    )
    problem("engine_ids")

    st.markdown("**Options**")
    st.caption("Each option's help (?) says what it does and its default.")
    left, middle, right = st.columns(3)
    with left:
        st.checkbox(
            "Skip the DNS check (MX lookups)", key=state_key("skip_mx"), help=HELP["skip_mx"]
        )
        problem("skip_mx")
        st.number_input(
            "Dedupe window (hours)",
            step=1.0,
            format="%g",
            key=state_key("dedupe_window_hours"),
            help=HELP["dedupe_window_hours"],
        )
        problem("dedupe_window_hours")
        st.number_input(
            "Auto-pause threshold (%)",
            step=5.0,
            format="%g",
            key=state_key("auto_pause_percent"),
            help=HELP["auto_pause_percent"],
        )
        problem("auto_pause_percent")
        st.number_input(
            "Time limit (minutes)",
            value=None,  # so that clearing the field means no limit, not 0
            step=5.0,
            format="%g",
            key=state_key("time_limit_minutes"),
            placeholder="no limit",
            help=HELP["time_limit_minutes"],
        )
        problem("time_limit_minutes")
        st.number_input(
            "Retry deferred mail for (hours)",
            step=1.0,
            format="%g",
            key=state_key("retry_lifetime_hours"),
            help=HELP["retry_lifetime_hours"],
        )
        problem("retry_lifetime_hours")
        window, zone = st.columns(2)
        window.text_input(
            "Send window",
            key=state_key("send_window"),
            placeholder="any hour",
            help=HELP["send_window"],
        )
        zone.selectbox("Time zone", options=ZONES, key=state_key("timezone"), help=HELP["timezone"])
        problem("send_window")
        problem("timezone")
    with middle:
        st.radio(
            "Rows whose template does not render",
            options=["skip", "abort"],
            format_func={
                "skip": "Skip them, send the rest",
                "abort": "Abort: send nothing",
            }.get,
            key=state_key("on_render_error"),
            help=HELP["on_render_error"],
        )
        problem("on_render_error")
        st.number_input(
            "Wait for DNS (hours)",
            step=1.0,
            format="%g",
            key=state_key("dns_wait_hours"),
            help=HELP["dns_wait_hours"],
        )
        problem("dns_wait_hours")
        st.radio(
            "Rows whose domain DNS still has not answered then",
            options=["wait", "send", "skip"],
            format_func={
                "wait": "Keep waiting",
                "send": "Send them anyway",
                "skip": "Skip them (dns_error)",
            }.get,
            key=state_key("on_dns_unanswered"),
            help=HELP["on_dns_unanswered"],
        )
        problem("on_dns_unanswered")
        st.text_input(
            "Report recipients",
            key=state_key("report_recipients"),
            placeholder="ops@example.com, boss@example.com",
            help=HELP["report_recipients"],
        )
        problem("report_recipients")
        st.checkbox(
            "Retry ambiguous sends once",
            key=state_key("retry_ambiguous_once"),
            help=HELP["retry_ambiguous_once"],
        )
        st.caption(
            ":orange[:material/warning: A send that timed out or dropped after the message was "
            "handed over may have arrived: retrying it may send that recipient a duplicate.]"
        )
    with right:
        st.text_input(
            "Unsubscribe mailto",
            key=state_key("unsubscribe_mailto"),
            placeholder="unsubscribe@example.com",
            help=HELP["unsubscribe_mailto"],
        )
        problem("unsubscribe_mailto")
        st.text_input(
            "Unsubscribe base URL",
            key=state_key("unsubscribe_base_url"),
            placeholder="https://example.com/unsubscribe",
            help=HELP["unsubscribe_base_url"],
        )
        problem("unsubscribe_base_url")
        rate, burst, concurrency = st.columns(3)
        rate.number_input(
            "Rate /s", step=1.0, format="%g", key=state_key("rate"), help=HELP["rate"]
        )
        burst.number_input("Burst", step=1, key=state_key("burst"), help=HELP["burst"])
        concurrency.number_input(
            "Parallel", step=1, key=state_key("concurrency"), help=HELP["concurrency"]
        )
        for field in ("rate", "burst", "concurrency"):
            problem(field)
    st.form_submit_button(
        "Save workflow" if picked else "Create workflow",
        type="primary",
        on_click=save,
        icon=":material/save:",
    )

if picked:
    ui.steps_editor(ws, picked, templates)
    st.button(
        "Delete workflow",
        on_click=delete,
        args=(picked,),
        key="wf_delete",
        icon=":material/delete:",
        help="Only a workflow that has never run can be deleted.",
    )
