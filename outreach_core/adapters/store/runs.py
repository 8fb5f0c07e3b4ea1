"""Runs: insert, read, status changes guarded by the state machine, claiming and heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import retry_waits, templates
from outreach_core.adapters.store.tables import runs
from outreach_core.domain.models import Run, SendOptions, Workflow
from outreach_core.domain.states import (
    ACTIVE_RUN_STATES,
    FINAL_RUN_STATES,
    RunStatus,
    check_run_transition,
)
from outreach_core.errors import IllegalTransition, NotFound


def _to_run(row: sa.Row) -> Run:
    data = dict(row._mapping)
    data["options"] = SendOptions.from_stored(data["options"])
    return Run.model_validate(data)


#: a row of the runs table (extra columns ignored) as the model
to_run = _to_run


def insert_run(
    conn: Connection,
    *,
    workflow_id: int,
    trigger: str,
    options: SendOptions,
    template_version_id: int,
    engine_id: int,
    now: datetime,
) -> int:
    """A new run in QUEUED; returns its id."""
    result = conn.execute(
        runs.insert().values(
            workflow_id=workflow_id,
            status=RunStatus.QUEUED,
            trigger=trigger,
            options=options.model_dump(mode="json"),
            template_version_id=template_version_id,
            engine_id=engine_id,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def insert_workflow_run(
    conn: Connection,
    workflow: Workflow,
    *,
    trigger: str,
    now: datetime,
    options: SendOptions | None = None,
) -> int:
    """A QUEUED run of the workflow with its current template version and engine, and its own
    options unless others are given; returns its id."""
    version = templates.current_version(conn, workflow.template_id)
    return insert_run(
        conn,
        workflow_id=workflow.id,
        trigger=trigger,
        options=options or workflow.options,
        template_version_id=version.version_id,
        engine_id=workflow.engine_id,
        now=now,
    )


def get_run(conn: Connection, run_id: int) -> Run:
    """The run, or NotFound."""
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"there is no run {run_id}; `python -m outreach_core runs` lists them")
    return _to_run(row)


def list_runs(conn: Connection, *, limit: int = 100) -> list[Run]:
    """The latest runs, newest first."""
    rows = conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(limit))
    return [_to_run(row) for row in rows]


def count_runs(conn: Connection) -> int:
    """How many runs exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one())


def set_run_status(
    conn: Connection,
    run_id: int,
    *,
    expected: RunStatus,
    target: RunStatus,
    now: datetime,
    reason: str | None = None,
    worker_id: str | None = None,
) -> None:
    """Move a run from `expected` to `target`; raises if illegal or if the run moved meanwhile.

    With `worker_id`, the run also becomes that executor's (heartbeat now).
    """
    check_run_transition(expected, target)
    values: dict[str, object] = {"status": target, "status_reason": reason}
    if worker_id is not None:
        values.update(worker_id=worker_id, heartbeat_at=now)
    if target is RunStatus.INITIALIZING:
        values["started_at"] = now
    # no state keeps an automatic resume time across a move: an executor's timed pause sets
    # it afterwards (`pause_until`), and a user's pause of a run waiting for its scheduled
    # retries must not be resumed by the daemon at that run's retry time
    values["resume_at"] = None
    if target in FINAL_RUN_STATES:
        values.update(finished_at=now, worker_id=None, heartbeat_at=None)
    result = conn.execute(
        runs.update().where(runs.c.id == run_id, runs.c.status == expected).values(**values)
    )
    if result.rowcount != 1:
        actual = get_run(conn, run_id).status
        raise IllegalTransition(
            f"run {run_id} is {actual}, not {expected}; it cannot go to {target}"
        )


def claim_next_run(
    conn: Connection, *, worker_id: str, now: datetime, run_id: int | None = None
) -> Run | None:
    """Atomically take the oldest QUEUED run (or the one named) into INITIALIZING.

    None when there is none to take.

    On PostgreSQL the inner SELECT locks with FOR UPDATE SKIP LOCKED so concurrent daemons
    pass over each other's row; on SQLite the writer lock serialises claimants. Either way the
    `status = QUEUED` guard on the UPDATE lets exactly one claimant win a given run.
    """
    wanted = [runs.c.status == RunStatus.QUEUED]
    if run_id is not None:
        wanted.append(runs.c.id == run_id)
    candidate = (
        sa.select(runs.c.id)
        .where(*wanted)
        .order_by(runs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    row = conn.execute(
        runs.update()
        .where(runs.c.id == candidate, runs.c.status == RunStatus.QUEUED)
        .values(
            status=RunStatus.INITIALIZING,
            worker_id=worker_id,
            heartbeat_at=now,
            started_at=now,
        )
        .returning(*runs.c)
    ).first()
    return _to_run(row) if row else None


def take_over_run(conn: Connection, run: Run, *, worker_id: str, now: datetime) -> bool:
    """Become the executor of an active run whose holder is gone.

    A compare-and-swap on the previous holder and heartbeat: if someone else took it over
    first, or the holder heartbeated meanwhile, nothing changes and False is returned.
    """
    if run.status not in ACTIVE_RUN_STATES | {RunStatus.PAUSED}:
        return False
    result = conn.execute(
        runs.update()
        .where(
            runs.c.id == run.id,
            runs.c.status == run.status,
            _is(runs.c.worker_id, run.worker_id),
            _is(runs.c.heartbeat_at, run.heartbeat_at),
        )
        .values(worker_id=worker_id, heartbeat_at=now)
    )
    return result.rowcount == 1


def _is(column: sa.Column, value: object) -> sa.ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def heartbeat(conn: Connection, run_id: int, *, worker_id: str, now: datetime) -> bool:
    """Refresh the heartbeat; False means the run is no longer ours."""
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.worker_id == worker_id)
        .values(heartbeat_at=now)
    )
    return result.rowcount == 1


def touch_run(conn: Connection, run_id: int) -> None:
    """A write that changes nothing: on SQLite it takes the database's write lock now."""
    # a column no other table refers to, so no foreign key is checked
    conn.execute(runs.update().where(runs.c.id == run_id).values(worker_id=runs.c.worker_id))


def release_run(conn: Connection, run_id: int, *, worker_id: str) -> None:
    """Let go of a run on a clean stop, so that `resume` may take it at once."""
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.worker_id == worker_id)
        .values(worker_id=None, heartbeat_at=None)
    )


def orphaned_runs(conn: Connection, *, heartbeat_before: datetime) -> list[Run]:
    """Active runs with no holder or a heartbeat older than `heartbeat_before`; not the runs
    let go on purpose to wait for scheduled retries (`retry_waits`)."""
    rows = conn.execute(
        sa.select(runs)
        .where(
            runs.c.status.in_(list(ACTIVE_RUN_STATES)),
            sa.or_(runs.c.heartbeat_at.is_(None), runs.c.heartbeat_at < heartbeat_before),
            sa.not_(retry_waits.WAITING_RUN),
        )
        .order_by(runs.c.id)
    )
    return [_to_run(row) for row in rows]


def pause_until(
    conn: Connection,
    run_id: int,
    *,
    resume_at: datetime,
    reason: str,
    now: datetime,
) -> None:
    """SENDING -> PAUSED by its executor, to be resumed automatically at `resume_at`."""
    set_run_status(
        conn, run_id, expected=RunStatus.SENDING, target=RunStatus.PAUSED, now=now, reason=reason
    )
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(resume_at=resume_at, worker_id=None, heartbeat_at=None)
    )


def due_paused_runs(conn: Connection, *, now: datetime) -> list[Run]:
    """PAUSED runs whose automatic resume time has passed, oldest first."""
    rows = conn.execute(
        sa.select(runs)
        .where(
            runs.c.status == RunStatus.PAUSED,
            runs.c.resume_at.is_not(None),
            runs.c.resume_at <= now,
        )
        .order_by(runs.c.resume_at, runs.c.id)
    )
    return [_to_run(row) for row in rows]


def resume_due_run(
    conn: Connection, run_id: int, *, worker_id: str, due_at: datetime, now: datetime
) -> bool:
    """PAUSED -> SENDING for this worker (heartbeat `now`), only while the run is still paused
    until a time no later than `due_at`; False when another executor won or the run is not
    due (a user's pause has no resume time)."""
    check_run_transition(RunStatus.PAUSED, RunStatus.SENDING)
    result = conn.execute(
        runs.update()
        .where(
            runs.c.id == run_id,
            runs.c.status == RunStatus.PAUSED,
            runs.c.resume_at.is_not(None),
            runs.c.resume_at <= due_at,
        )
        .values(
            status=RunStatus.SENDING,
            status_reason=None,
            resume_at=None,
            worker_id=worker_id,
            heartbeat_at=now,
        )
    )
    return result.rowcount == 1


def active_runs(conn: Connection) -> list[Run]:
    """Runs in INITIALIZING or SENDING, oldest first."""
    rows = conn.execute(
        sa.select(runs).where(runs.c.status.in_(list(ACTIVE_RUN_STATES))).order_by(runs.c.id)
    )
    return [_to_run(row) for row in rows]


def last_completed_before(
    conn: Connection, workflow_id: int, *, before_run_id: int
) -> datetime | None:
    """When the workflow's latest COMPLETED run older than `before_run_id` was created."""
    found = conn.execute(
        sa.select(sa.func.max(runs.c.created_at)).where(
            runs.c.workflow_id == workflow_id,
            runs.c.status == RunStatus.COMPLETED,
            runs.c.id < before_run_id,
        )
    ).scalar_one_or_none()
    if found is None:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def reopen_run(
    conn: Connection, run_id: int, *, expected: RunStatus, now: datetime, reason: str
) -> None:
    """COMPLETED or PAUSED -> QUEUED for "retry deferred and unknown" (RUN_REOPEN_TRANSITIONS).

    The run loses its end time, holder and automatic resume time, so an executor claims it like
    any queued run; its frozen deliveries are kept (the executor does not freeze them again).
    """
    check_run_transition(expected, RunStatus.QUEUED, reopen=True)
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.status == expected)
        .values(
            status=RunStatus.QUEUED,
            status_reason=reason,
            finished_at=None,
            worker_id=None,
            heartbeat_at=None,
            resume_at=None,
        )
    )
    if result.rowcount != 1:
        actual = get_run(conn, run_id).status
        raise IllegalTransition(f"run {run_id} is {actual}, not {expected}; it was not re-queued")


def latest_run_per_workflow(conn: Connection) -> dict[int, Run]:
    """The newest run of every workflow that has one, by workflow id."""
    newest = sa.select(sa.func.max(runs.c.id)).group_by(runs.c.workflow_id).scalar_subquery()
    rows = conn.execute(sa.select(runs).where(runs.c.id.in_(newest)))
    return {int(run.workflow_id): run for run in map(_to_run, rows)}


def count_runs_of_workflow(conn: Connection, workflow_id: int) -> int:
    """How many runs a workflow has had."""
    query = sa.select(sa.func.count()).select_from(runs).where(runs.c.workflow_id == workflow_id)
    return int(conn.execute(query).scalar_one())
