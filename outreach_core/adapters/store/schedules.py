"""Schedules: CRUD, and claiming the due ones (one winner across every daemon)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import runs, workflows
from outreach_core.adapters.store.tables import schedules
from outreach_core.domain.cadence import Schedule, decide_due
from outreach_core.domain.models import SendOptions
from outreach_core.errors import NotFound, OutreachError

#: the `trigger` of a run a schedule created
SCHEDULE_TRIGGER = "schedule"


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
        claimed.append(Claimed(schedule.id, run_id, decision.next_run_at, note))
    return claimed
