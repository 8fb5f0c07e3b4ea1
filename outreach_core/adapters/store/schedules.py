"""Schedules: CRUD, and claiming the due ones (one winner across every daemon)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import audit, runs, workflows
from outreach_core.adapters.store.tables import audit_log, schedules
from outreach_core.domain.cadence import MissedAction, MissedSlots, Schedule, decide_due
from outreach_core.domain.models import SendOptions
from outreach_core.errors import NotFound, OutreachError

#: the `trigger` of a run a schedule created
SCHEDULE_TRIGGER = "schedule"
#: the audit action of one slot a schedule missed, and the actor that records it
MISSED_ACTION = "schedule.missed"
SCHEDULER_ACTOR = "scheduler"
_SUBJECT = "schedule "


def _to_schedule(row: sa.Row) -> Schedule:
    return Schedule.model_validate(dict(row._mapping))


def insert_schedule(conn: Connection, *, now: datetime, **values: Any) -> int:
    """A new schedule (columns of the table as keywords); returns its id."""
    result = conn.execute(schedules.insert().values(created_at=now, **values))
    return int(result.inserted_primary_key[0])


def update_schedule(conn: Connection, schedule_id: int, **values: Any) -> None:
    """Change columns of a schedule; NotFound if it does not exist."""
    result = conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))
    if result.rowcount != 1:
        raise NotFound(f"there is no schedule {schedule_id}")


def get_schedule(conn: Connection, schedule_id: int) -> Schedule:
    """The schedule, or NotFound."""
    row = conn.execute(sa.select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFound(f"there is no schedule {schedule_id}")
    return _to_schedule(row)


def list_schedules(conn: Connection) -> list[Schedule]:
    """Every schedule, oldest first."""
    return [_to_schedule(r) for r in conn.execute(sa.select(schedules).order_by(schedules.c.id))]


@dataclass(frozen=True)
class Claimed:
    """What claiming did with one due schedule."""

    schedule_id: int
    #: the run it created, None when the slot was skipped by policy or could not run
    run_id: int | None
    next_run_at: datetime
    note: str
    #: the slots missed before this claim and what the policy did with them (None: none)
    missed: MissedSlots | None = None


def run_options(schedule: Schedule, options: SendOptions) -> SendOptions:
    """The workflow's options with the schedule's send window and zone."""
    window = schedule.window
    if window is None:
        return options
    return options.model_copy(update={"send_window": str(window), "timezone": schedule.timezone})


def insert_scheduled_run(
    conn: Connection, schedule: Schedule, *, now: datetime, trigger: str = SCHEDULE_TRIGGER
) -> int:
    """A QUEUED run for the schedule (the workflow's options with the schedule's window)."""
    workflow = workflows.get_workflow(conn, schedule.workflow_id)
    return runs.insert_workflow_run(
        conn, workflow, trigger=trigger, now=now, options=run_options(schedule, workflow.options)
    )


def claim_due_schedules(conn: Connection, *, now: datetime, limit: int = 50) -> list[Claimed]:
    """Create the runs of every due schedule and advance their `next_run_at`, in the caller's
    transaction; a schedule is claimed by exactly one caller however many daemons try.

    Candidates are read with FOR UPDATE SKIP LOCKED on PostgreSQL (daemons pass over each other's
    rows). Each one is then taken with a compare-and-swap UPDATE on the `next_run_at` that was
    read: on SQLite that UPDATE is also the transaction's first write, so it takes the writer
    lock before anything else is decided, and the loser sees no row changed.
    """
    candidates = conn.execute(
        sa.select(schedules)
        .where(
            schedules.c.enabled.is_(True),
            schedules.c.next_run_at.is_not(None),
            schedules.c.next_run_at <= now,
        )
        .order_by(schedules.c.next_run_at, schedules.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed: list[Claimed] = []
    for row in candidates:
        schedule = _to_schedule(row)
        assert schedule.next_run_at is not None  # filtered above
        decision = decide_due(
            schedule.cadence,
            schedule.timezone,
            next_run_at=schedule.next_run_at,
            now=now,
            policy=schedule.missed_policy,
            late_window_hours=schedule.late_window_hours,
        )
        won = conn.execute(
            schedules.update()
            .where(
                schedules.c.id == schedule.id,
                schedules.c.enabled.is_(True),
                schedules.c.next_run_at == schedule.next_run_at,
            )
            .values(next_run_at=decision.next_run_at, last_note=decision.note)
        )
        if won.rowcount != 1:
            continue  # another daemon claimed it first
        run_id, note = None, decision.note
        if decision.run:
            try:
                run_id = insert_scheduled_run(conn, schedule, now=now)
            except OutreachError as exc:  # e.g. the workflow's template was deleted
                note = f"could not create a run: {exc}"
            values: dict[str, Any] = {"last_note": note}
            if run_id is not None:
                values.update(last_run_id=run_id, last_run_at=decision.slot)
            conn.execute(schedules.update().where(schedules.c.id == schedule.id).values(**values))
        missed = decision.missed
        if missed is not None:
            if missed.action is MissedAction.CAUGHT_UP and run_id is None:
                missed = replace(missed, action=MissedAction.SKIPPED)  # the late run failed
            # in the claim's transaction: the daemon that wins the slot records it, once
            record_missed(conn, schedule.id, missed, run_id=run_id, now=now)
        claimed.append(Claimed(schedule.id, run_id, decision.next_run_at, note, missed))
    return claimed


def subject_of(schedule_id: int) -> str:
    """The audit subject of a schedule's entries."""
    return f"{_SUBJECT}{schedule_id}"


def record_missed(
    conn: Connection, schedule_id: int, missed: MissedSlots, *, run_id: int | None, now: datetime
) -> None:
    """One audit entry per missed slot: its time (UTC), the policy, and what became of it."""
    details = []
    for slot in missed.slots:
        action = missed.action_of(slot)
        detail: dict[str, Any] = {
            "slot": f"{slot:%Y-%m-%dT%H:%M:%SZ}",
            "policy": str(missed.policy),
            "action": str(action),
        }
        if action is MissedAction.CAUGHT_UP:
            detail["run"] = run_id
        details.append(detail)
    audit.record_many(
        conn,
        actor=SCHEDULER_ACTOR,
        action=MISSED_ACTION,
        subject=subject_of(schedule_id),
        now=now,
        details=details,
    )


def missed_slot_counts(conn: Connection) -> dict[int, int]:
    """How many missed slots the audit holds per schedule id (schedules with none absent)."""
    rows = conn.execute(
        sa.select(audit_log.c.subject, sa.func.count())
        .where(audit_log.c.action == MISSED_ACTION)
        .group_by(audit_log.c.subject)
    )
    return {int(subject.removeprefix(_SUBJECT)): int(n) for subject, n in rows}


def latest_missed(conn: Connection, schedule_id: int, *, limit: int = 10) -> list[dict[str, Any]]:
    """The schedule's newest missed-slot entries (`at`, `detail`), newest slot first."""
    rows = conn.execute(
        sa.select(audit_log.c.at, audit_log.c.detail)
        .where(
            audit_log.c.action == MISSED_ACTION,
            audit_log.c.subject == subject_of(schedule_id),
        )
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]
