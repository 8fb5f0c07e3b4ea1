"""Schedules: run a workflow on a cadence in local time; the next five runs shown before saving;
enable, disable, run now; whether a scheduler daemon is alive to run them."""

from datetime import time

import pandas as pd
import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.domain.cadence import CadenceKind, MissedSlotPolicy, common_zones
from outreach_core.services import preflight, schedules

ws = ui.workspace()
NEW = 0
KIND_LABELS = {
    CadenceKind.DAILY: "Daily",
    CadenceKind.WEEKDAYS: "Weekdays (Mon-Fri)",
    CadenceKind.WEEKLY: "Weekly on chosen days",
    CadenceKind.MONTHLY: "Monthly on a day",
    CadenceKind.HOURS: "Every N hours",
    CadenceKind.MINUTES: "Every N minutes",
}
DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

st.title("Schedules")
st.caption(
    "Run a workflow daily, on weekdays, weekly or monthly at a local time. The scheduler daemon "
    "runs what is due; recipients this workflow mailed inside its dedupe window are skipped."
)

feedback = st.session_state.pop("sched_feedback", None)
if feedback:
    st.success(feedback)  # from the action of the previous run, before the table redrew

status = schedules.daemon_status(ws)
(st.success if status.healthy else st.warning)(str(status))

views = schedules.list_schedules(ws)
if views:
    st.dataframe(pd.DataFrame(schedules.schedule_rows(views)), hide_index=True)
else:
    st.info("No schedule yet: create one below.")

missed = [v for v in views if v.missed_count]
if missed:
    st.subheader("Missed slots")
    st.caption(
        "Slots that passed while no daemon was running (or while it was busy), and what the "
        "schedule's missed-slot policy did with each; the audit log holds every one."
    )
    for view in missed:
        shown = len(view.missed)
        st.markdown(
            f"**Schedule {view.schedule.id}** ({view.workflow_name}): "
            f"{view.missed_count} missed slot(s)"
            + (f", the latest {shown}:" if shown < view.missed_count else ":")
        )
        st.dataframe(
            pd.DataFrame(schedules.missed_rows(view)),
            hide_index=True,
            key=f"sched_missed_{view.schedule.id}",
        )

workflows = services.list_workflows(ws)
if not workflows:
    st.info("Create a workflow first (the Send page or `python -m outreach_core send`).")
    st.stop()

by_id = {v.schedule.id: v.schedule for v in views}
editing = st.selectbox(
    "Schedule",
    options=[NEW, *by_id],
    format_func=lambda i: "New schedule" if i == NEW else f"Schedule {i}",
    key="schedule_pick",
)
current = by_id.get(editing)
names = {w.id: w.name for w in workflows}
zones = common_zones()

left, right = st.columns(2, gap="large")
with left:
    workflow_id = st.selectbox(
        "Workflow",
        options=list(names),
        format_func=names.get,
        index=list(names).index(current.workflow_id) if current else 0,
        key=f"sched_workflow_{editing}",
    )
    kinds = list(KIND_LABELS)
    kind = st.selectbox(
        "Cadence",
        options=kinds,
        format_func=KIND_LABELS.get,
        index=kinds.index(current.cadence.kind) if current else 0,
        key=f"sched_kind_{editing}",
    )
    interval = at = days = day_of_month = None
    if kind in (CadenceKind.MINUTES, CadenceKind.HOURS):
        interval = st.number_input(
            f"Every how many {kind}",
            min_value=1,
            value=(current.cadence.interval if current and current.cadence.interval else 1),
            key=f"sched_interval_{editing}",
        )
    else:
        at = st.time_input(
            "At (local time)",
            value=(current.cadence.at if current and current.cadence.at else time(9, 0)),
            step=300,
            key=f"sched_at_{editing}",
        )
    if kind is CadenceKind.WEEKLY:
        days = st.multiselect(
            "Days",
            options=list(range(7)),
            format_func=DAY_NAMES.__getitem__,
            default=list(current.cadence.days) if current else [0],
            key=f"sched_days_{editing}",
        )
    if kind is CadenceKind.MONTHLY:
        day_of_month = st.number_input(
            "Day of the month (the last day when the month is shorter)",
            min_value=1,
            max_value=31,
            value=current.cadence.day_of_month if current and current.cadence.day_of_month else 1,
            key=f"sched_dom_{editing}",
        )
    timezone = st.selectbox(
        "Time zone",
        options=zones,
        index=zones.index(current.timezone if current else "UTC"),
        key=f"sched_tz_{editing}",
    )
with right:
    policy = st.radio(
        "Missed slots (no daemon was running)",
        options=list(MissedSlotPolicy),
        format_func=lambda p: (
            "Skip to the next slot" if p is MissedSlotPolicy.SKIP else "Run once, late, if recent"
        ),
        index=list(MissedSlotPolicy).index(current.missed_policy) if current else 0,
        key=f"sched_policy_{editing}",
    )
    late_hours = st.number_input(
        "Run late if within (hours)",
        min_value=0.0,
        max_value=744.0,
        value=float(current.late_window_hours) if current else 6.0,
        disabled=policy is MissedSlotPolicy.SKIP,
        key=f"sched_late_{editing}",
    )
    windowed = st.checkbox(
        "Send only inside a window",
        value=bool(current and current.window),
        key=f"sched_windowed_{editing}",
        help="A run still going at the window's end pauses and resumes at the next opening.",
    )
    window = None
    if windowed:
        start_col, end_col = st.columns(2)
        start = start_col.time_input(
            "From", value=current.window.start if current and current.window else time(9, 0),
            key=f"sched_wstart_{editing}",
        )  # fmt: skip
        end = end_col.time_input(
            "Until", value=current.window.end if current and current.window else time(17, 0),
            key=f"sched_wend_{editing}",
        )  # fmt: skip
        window = f"{start:%H:%M}-{end:%H:%M}"
    enabled = st.checkbox(
        "Enabled", value=current.enabled if current else True, key=f"sched_enabled_{editing}"
    )

try:
    cadence = schedules.make_cadence(
        kind, interval=interval, at=at, days=days, day_of_month=day_of_month
    )
    upcoming = schedules.upcoming_runs(cadence, timezone)
except OutreachError as exc:
    st.error(ui.plain(str(exc)))
    st.stop()

st.markdown(f"**Next five runs** ({timezone}):")
st.markdown("\n".join(f"- {slot}" for slot in upcoming))

if st.button("Save schedule", type="primary", key="sched_save") and ui.require_role("sender"):
    try:
        saved = schedules.save_schedule(
            ws,
            schedules.ScheduleInput(
                workflow_id=workflow_id,
                cadence=cadence,
                timezone=timezone,
                enabled=enabled,
                missed_policy=policy,
                late_window_hours=late_hours if policy is MissedSlotPolicy.RUN_LATE else 0.0,
                send_window=window,
            ),
            actor=ui.actor(),
            schedule_id=current.id if current else None,
        )
    except OutreachError as exc:
        st.error(ui.plain(str(exc)))
    else:
        st.session_state["sched_feedback"] = f"Saved {saved}."
        st.rerun()

if current:
    toggle, run_now = st.columns(2)
    if toggle.button(
        "Disable" if current.enabled else "Enable", key="sched_toggle"
    ) and ui.require_role("sender"):
        changed = schedules.set_enabled(ws, current.id, not current.enabled, actor=ui.actor())
        state = "enabled" if changed.enabled else "disabled"
        st.session_state["sched_feedback"] = f"Schedule {changed.id} {state}."
        st.rerun()
    run_now.button(
        "Run now",
        key="sched_run_now",
        on_click=lambda: st.session_state.update(sched_confirming=current.id, sched_confirm=False),
        help="Checks the workflow first and asks you to confirm the count.",
    )
    if st.session_state.get("sched_confirming") == current.id:

        def run_schedule_now(schedule_id: int) -> None:
            """Confirmed: queue a run of the schedule's workflow (its send window applies)."""
            st.session_state.pop("sched_confirming", None)
            if not ui.require_role("sender"):
                return
            try:
                run_id = schedules.run_schedule_now(ws, schedule_id, actor=ui.actor())
            except OutreachError as exc:
                st.session_state["sched_error"] = str(exc)
            else:
                st.session_state["sched_feedback"] = (
                    f"Run {run_id} queued: the scheduler daemon will send it."
                )

        with st.container(border=True):
            try:
                result = preflight.workflow_preflight(ws, current.workflow_id)
            except OutreachError as exc:
                ui.error_text(str(exc))
            else:
                ui.preflight_summary(result, key="sched_pre")
                ui.confirm_send(
                    result,
                    key="sched",
                    button="Queue run",
                    on_confirm=run_schedule_now,
                    args=(current.id,),
                    on_cancel=lambda: st.session_state.pop("sched_confirming", None),
                )
    error = st.session_state.pop("sched_error", None)
    if error:
        ui.error_text(error)
