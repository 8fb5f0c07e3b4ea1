"""Follow-up steps: a workflow's steps edited, the due ones queued (by the daemon's tick), and
how many recipients each step will reach (the pre-flight and the Send page).

A step N+1 is queued once step N's run has COMPLETED and `delay_days` local days have passed
in the time zone of the workflow's schedule, inside its send window (without a schedule: the
run's own time zone and window). Each is queued once
however many daemons tick at once (`adapters/store/follow_ups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import (
    audit,
    deliveries,
    follow_ups,
    suppressions,
    workflow_steps,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.cadence import parse_window
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Run
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.steps import (
    MAX_DELAY_DAYS,
    MAX_STEPS,
    FollowUpCandidate,
    StepDefinition,
    is_missed,
    plan_follow_ups,
    step_due_at,
)
from outreach_core.errors import InputError


def list_steps(ws: Workspace, workflow_id: int) -> list[StepDefinition]:
    """The workflow's follow-up steps (2 to 5), in order."""
    with ws.db.connect() as conn:
        return workflow_steps.list_steps(conn, workflow_id)


def save_steps(
    ws: Workspace, workflow_id: int, steps: Sequence[StepDefinition], *, actor: str
) -> list[StepDefinition]:
    """Replace the workflow's follow-up steps (InputError when they are not 2, 3, ... without a
    gap, or name a template that does not exist). A step removed before it was queued is never
    sent; one already queued goes on."""
    now = utcnow()
    with ws.db.begin() as conn:
        workflows.get_workflow(conn, workflow_id)  # NotFound naming it
        workflow_steps.replace_steps(conn, workflow_id, steps)
        audit.record(
            conn,
            actor=actor,
            action="workflow.steps",
            subject=f"workflow {workflow_id}",
            now=now,
            detail={"steps": [s.model_dump() for s in steps]},
        )
        return workflow_steps.list_steps(conn, workflow_id)


def add_step(
    ws: Workspace,
    workflow_id: int,
    *,
    template_id: int,
    delay_days: int,
    thread: bool = True,
    actor: str,
) -> StepDefinition:
    """Append a follow-up step after the workflow's last one."""
    current = list_steps(ws, workflow_id)
    number = len(current) + 2
    if number > MAX_STEPS:
        raise InputError(f"workflow {workflow_id} has {MAX_STEPS} steps already, the most allowed")
    try:
        step = StepDefinition(
            step=number, template_id=template_id, delay_days=delay_days, thread=thread
        )
    except ValidationError:
        raise InputError(
            f"a step goes 1 to {MAX_DELAY_DAYS} days after the step before, not {delay_days}"
        ) from None
    save_steps(ws, workflow_id, [*current, step], actor=actor)
    return step


def remove_step(ws: Workspace, workflow_id: int, step: int, *, actor: str) -> None:
    """Remove step `step` and the steps after it (a later step follows the one before it)."""
    current = list_steps(ws, workflow_id)
    if step not in {s.step for s in current}:
        raise InputError(f"workflow {workflow_id} has no step {step}")
    save_steps(ws, workflow_id, [s for s in current if s.step < step], actor=actor)


@dataclass(frozen=True)
class QueuedStep:
    """A follow-up run queued by this call."""

    run_id: int
    previous_run_id: int
    workflow_id: int
    step: int


def due_at(conn: Connection, previous: Run, step: StepDefinition) -> datetime | None:
    """When `step` falls due after `previous` (None while that run has not finished): in the
    time zone and send window of the workflow's schedule, or of the run's options when the
    workflow has no schedule."""
    if previous.finished_at is None:
        return None
    timing = follow_ups.schedule_timing(conn, previous.workflow_id, previous.id)
    zone, window = timing or (previous.options.timezone, previous.options.send_window)
    if timing is not None and window is None:  # the schedule sends at any hour: the run's own
        window = previous.options.send_window
    parsed = parse_window(window) if window else None
    return step_due_at(previous.finished_at, step.delay_days, zone, parsed)


def queue_due_steps(ws: Workspace, *, clock: Clock = utcnow) -> list[QueuedStep]:
    """Queue the run of every follow-up step that is due, in one transaction; each is queued
    by one caller only (daemons racing for one: the first wins, the others skip it)."""
    now = clock()
    queued: list[QueuedStep] = []
    with ws.db.begin() as conn:
        for previous, step in follow_ups.runs_with_next_step(conn, now=now):
            due = due_at(conn, previous, step)
            if due is None or due > now or is_missed(due, now=now):
                continue
            run_id = follow_ups.insert_follow_up_run(conn, previous, step, now=now)
            if run_id is None:  # another daemon queued it first
                continue
            queued.append(QueuedStep(run_id, previous.id, previous.workflow_id, step.step))
    return queued


def eligible_count(conn: Connection, run_id: int) -> int:
    """How many recipients of `run_id` a follow-up would reach now: those sent whose thread has
    no reply, bounce or complaint and who are not suppressed (rendering aside)."""
    total = 0
    for chunk in follow_ups.iter_previous(conn, run_id):
        keys = [p.email_normalized for p in chunk if p.email_normalized]
        suppressed = suppressions.suppressed_among(conn, keys)
        plan = plan_follow_ups(
            (candidate_of(p) for p in chunk), suppressed=suppressed, render=lambda _: None
        )
        total += sum(1 for p in plan if p.status is DeliveryStatus.PENDING)
    return total


def candidate_of(previous: follow_ups.PreviousDelivery) -> FollowUpCandidate:
    """A recipient of the step before as the follow-up's planning sees it."""
    return FollowUpCandidate(
        previous_delivery_id=previous.id,
        row_number=previous.row_number,
        email=previous.email,
        key=previous.email_normalized,
        variables=previous.variables,
        status=previous.status,
        feedbacks=previous.feedbacks,
    )


@dataclass(frozen=True)
class StepReach:
    """How many recipients one step of a workflow will reach, and why that number."""

    step: int
    #: days after the step before (None: step 1)
    delay_days: int | None
    thread: bool
    #: None when it cannot be known yet (the step before has not been sent)
    reach: int | None
    note: str


def step_reach(
    ws: Workspace, workflow_id: int, *, first: int | None, now: datetime | None = None
) -> list[StepReach]:
    """Each step of the workflow with the recipients it will reach: step 1 `first` (the
    pre-flight's count); a later step, for the latest run of the step before, the recipients
    it reached minus those who replied, bounced, complained or unsubscribed since (or what its
    own run has, once queued)."""
    now = now or utcnow()
    rows = [StepReach(1, None, False, first, "the workflow's own message (the pre-flight above)")]
    with ws.db.connect() as conn:
        for step in workflow_steps.list_steps(conn, workflow_id):
            rows.append(_reach_of(conn, workflow_id, step, now=now))
    return rows


def _reach_of(
    conn: Connection, workflow_id: int, step: StepDefinition, *, now: datetime
) -> StepReach:
    def reach(count: int | None, note: str) -> StepReach:
        return StepReach(step.step, step.delay_days, step.thread, count, note)

    before = follow_ups.latest_run_of_step(conn, workflow_id, step.step - 1)
    if before is None:
        return reach(
            None,
            f"the recipients of step {step.step - 1} who have not replied, bounced, complained "
            f"or unsubscribed, {step.delay_days} days after it",
        )
    queued = follow_ups.follow_up_of(conn, before.id)
    if queued is not None:
        counts = deliveries.counts(conn, queued.id)
        frozen = counts.total - counts.skipped if counts.total else eligible_count(conn, before.id)
        return reach(frozen, f"run {queued.id} ({queued.status})")
    count = eligible_count(conn, before.id) if before.status is RunStatus.COMPLETED else None
    due = due_at(conn, before, step)
    if due is None:
        return reach(count, f"after run {before.id} of step {step.step - 1} ends ({before.status})")
    if is_missed(due, now=now):
        return reach(0, f"missed: run {before.id} of step {step.step - 1} ended long before")
    when = "due now" if due <= now else f"due {due:%Y-%m-%d %H:%M} UTC"
    return reach(count, f"after run {before.id} of step {step.step - 1}; {when}")
