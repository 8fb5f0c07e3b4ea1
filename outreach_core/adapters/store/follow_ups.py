"""Follow-up runs: which finished runs have a next step, queueing it once, the recipients of
the step before, and the thread each follow-up continues.

Once across daemons: `runs.previous_run_id` is unique, so of several daemons inserting the
follow-up of one run, the first commits and the others' inserts fail on that constraint; the
insert runs in a savepoint, so the loser's transaction goes on with its other candidates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import templates
from outreach_core.adapters.store.runs import to_run
from outreach_core.adapters.store.tables import deliveries, runs, schedules, workflow_steps
from outreach_core.domain.models import Run
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.steps import MAX_STEPS, StepDefinition, candidate_ends

#: deliveries read per query when a step's recipients are walked
CHUNK = 500


def runs_with_next_step(
    conn: Connection, *, now: datetime, limit: int = 1000
) -> list[tuple[Run, StepDefinition]]:
    """COMPLETED runs whose workflow has a step after theirs that was not queued yet and
    that ended when that step may be due at `now` (`candidate_ends`), each with that step;
    the most recently ended first."""
    earliest, latest = candidate_ends(now)
    follow_up = runs.alias("follow_up")
    rows = conn.execute(
        sa.select(runs, workflow_steps.c.template_id, workflow_steps.c.delay_days)
        .add_columns(workflow_steps.c.thread, workflow_steps.c.step.label("next_step"))
        .join(
            workflow_steps,
            sa.and_(
                workflow_steps.c.workflow_id == runs.c.workflow_id,
                workflow_steps.c.step == runs.c.step + 1,
            ),
        )
        .where(
            runs.c.status == RunStatus.COMPLETED,
            runs.c.finished_at >= earliest,
            runs.c.finished_at <= latest,
            ~sa.exists().where(follow_up.c.previous_run_id == runs.c.id),
        )
        .order_by(runs.c.finished_at.desc(), runs.c.id.desc())
        .limit(limit)
    ).all()
    return [
        (
            to_run(row),  # the step's columns are not the run's: the model leaves them out
            StepDefinition(
                step=row.next_step,
                template_id=row.template_id,
                delay_days=row.delay_days,
                thread=row.thread,
            ),
        )
        for row in rows
    ]


def insert_follow_up_run(
    conn: Connection, previous: Run, step: StepDefinition, *, now: datetime
) -> int | None:
    """Queue step `step` for the recipients of `previous` (QUEUED, with the step template's
    current version and `previous`'s options); its id, or None when some caller queued it
    already (the unique `previous_run_id`).

    The follow-up keeps no dedupe window: its recipients are by construction those the run
    before it sent to a few days ago, which a window of the workflow would otherwise skip.
    """
    version = templates.current_version(conn, step.template_id)
    options = previous.options.model_copy(update={"dedupe_window_hours": 0.0})
    try:
        with conn.begin_nested():
            result = conn.execute(
                runs.insert().values(
                    workflow_id=previous.workflow_id,
                    status=RunStatus.QUEUED,
                    trigger=step.trigger,
                    options=options.model_dump(mode="json"),
                    template_version_id=version.version_id,
                    engine_id=previous.engine_id,
                    created_at=now,
                    step=step.step,
                    previous_run_id=previous.id,
                )
            )
    except sa.exc.IntegrityError as exc:
        if _queued_already(conn, previous.id, exc):
            return None
        raise
    return int(result.inserted_primary_key[0])


def _queued_already(conn: Connection, previous_run_id: int, exc: sa.exc.IntegrityError) -> bool:
    """Whether the insert failed because the follow-up of that run exists (and nothing else:
    a foreign key or another constraint is re-raised)."""
    text = str(exc.orig).lower()
    if "previous_run_id" not in text:
        return False
    taken = conn.execute(
        sa.select(runs.c.id).where(runs.c.previous_run_id == previous_run_id)
    ).first()
    return taken is not None


def follow_up_of(conn: Connection, run_id: int) -> Run | None:
    """The follow-up run queued after `run_id`, if any."""
    row = conn.execute(sa.select(runs).where(runs.c.previous_run_id == run_id)).first()
    return to_run(row) if row else None


@dataclass(frozen=True)
class PreviousDelivery:
    """A recipient of the step before, as the follow-up's freeze sees it."""

    id: int
    row_number: int | None
    email: str
    email_normalized: str | None
    variables: dict[str, Any]
    status: DeliveryStatus
    engine_id: int | None
    #: the feedback of this delivery and of the thread's earlier ones
    feedbacks: tuple[str, ...]


def iter_previous(conn: Connection, run_id: int) -> Iterator[list[PreviousDelivery]]:
    """The deliveries of `run_id` that were sent, in chunks, with their thread's feedback."""
    after = 0
    while True:
        rows = conn.execute(
            sa.select(deliveries)
            .where(
                deliveries.c.run_id == run_id,
                deliveries.c.status == DeliveryStatus.SENT,
                deliveries.c.id > after,
            )
            .order_by(deliveries.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        earlier = _earlier_feedback(conn, {r.id: r.previous_delivery_id for r in rows})
        yield [
            PreviousDelivery(
                id=r.id,
                row_number=r.row_number,
                email=r.email,
                email_normalized=r.email_normalized,
                variables=dict(r.variables),
                status=DeliveryStatus(r.status),
                engine_id=r.engine_id,
                feedbacks=tuple(f for f in (r.feedback, *earlier.get(r.id, ())) if f),
            )
            for r in rows
        ]


def _earlier_feedback(conn: Connection, parents: dict[int, int | None]) -> dict[int, list[str]]:
    """For each delivery, the feedback of the deliveries its thread went through before it."""
    found: dict[int, list[str]] = {d: [] for d in parents}
    current = {d: p for d, p in parents.items() if p is not None}
    for _ in range(MAX_STEPS):
        if not current:
            break
        rows = conn.execute(
            sa.select(
                deliveries.c.id, deliveries.c.feedback, deliveries.c.previous_delivery_id
            ).where(deliveries.c.id.in_(set(current.values())))
        ).all()
        by_id = {r.id: r for r in rows}
        following = {}
        for origin, parent in current.items():
            row = by_id.get(parent)
            if row is None:
                continue
            if row.feedback:
                found[origin].append(row.feedback)
            if row.previous_delivery_id is not None:
                following[origin] = row.previous_delivery_id
        current = following
    return found


@dataclass(frozen=True)
class Ancestor:
    """An earlier message of a follow-up delivery's thread, with what its subject needs."""

    delivery_id: int
    step: int
    message_id: str | None
    email: str
    variables: dict[str, Any]
    engine_id: int | None
    run_trigger: str
    run_created_at: datetime
    template_version_id: int | None


def ancestors(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, list[Ancestor]]:
    """For each delivery, the deliveries of the steps before it, nearest first."""
    chains: dict[int, list[Ancestor]] = {d: [] for d in delivery_ids}
    current = dict(
        conn.execute(
            sa.select(deliveries.c.id, deliveries.c.previous_delivery_id).where(
                deliveries.c.id.in_(list(delivery_ids)),
                deliveries.c.previous_delivery_id.is_not(None),
            )
        ).all()
    )
    columns = (
        deliveries.c.id,
        deliveries.c.step,
        deliveries.c.message_id,
        deliveries.c.email,
        deliveries.c.variables,
        deliveries.c.engine_id,
        deliveries.c.previous_delivery_id,
        runs.c.trigger,
        runs.c.created_at,
        runs.c.template_version_id,
    )
    for _ in range(MAX_STEPS):
        if not current:
            break
        rows = conn.execute(
            sa.select(*columns)
            .join(runs, runs.c.id == deliveries.c.run_id)
            .where(deliveries.c.id.in_(set(current.values())))
        ).all()
        by_id = {r.id: r for r in rows}
        following = {}
        for origin, parent in current.items():
            r = by_id.get(parent)
            if r is None:
                continue
            chains[origin].append(
                Ancestor(
                    delivery_id=r.id,
                    step=r.step,
                    message_id=r.message_id,
                    email=r.email,
                    variables=dict(r.variables),
                    engine_id=r.engine_id,
                    run_trigger=r.trigger,
                    run_created_at=r.created_at,
                    template_version_id=r.template_version_id,
                )
            )
            if r.previous_delivery_id is not None:
                following[origin] = r.previous_delivery_id
        current = following
    return chains


def previous_engines(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, int]:
    """For each follow-up delivery, the engine that sent the step before it (when known)."""
    if not delivery_ids:
        return {}
    previous = deliveries.alias("previous")
    rows = conn.execute(
        sa.select(deliveries.c.id, previous.c.engine_id)
        .join(previous, previous.c.id == deliveries.c.previous_delivery_id)
        .where(deliveries.c.id.in_(list(delivery_ids)), previous.c.engine_id.is_not(None))
    )
    return {int(d): int(e) for d, e in rows}


def latest_run_of_step(conn: Connection, workflow_id: int, step: int) -> Run | None:
    """The workflow's newest run of `step` that was not cancelled or failed."""
    row = conn.execute(
        sa.select(runs)
        .where(
            runs.c.workflow_id == workflow_id,
            runs.c.step == step,
            runs.c.status.not_in([RunStatus.CANCELLED, RunStatus.FAILED]),
        )
        .order_by(runs.c.id.desc())
        .limit(1)
    ).first()
    return to_run(row) if row else None


def schedule_timing(
    conn: Connection, workflow_id: int, run_id: int
) -> tuple[str, str | None] | None:
    """The time zone and send window (`HH:MM-HH:MM` or None) of the workflow's schedule: the
    one whose last run is `run_id`, else its oldest; None when the workflow has no schedule."""
    rows = conn.execute(
        sa.select(
            schedules.c.timezone,
            schedules.c.window_start,
            schedules.c.window_end,
            schedules.c.last_run_id,
        )
        .where(schedules.c.workflow_id == workflow_id)
        .order_by(schedules.c.id)
    ).all()
    if not rows:
        return None
    row = next((r for r in rows if r.last_run_id == run_id), rows[0])
    window = f"{row.window_start}-{row.window_end}" if row.window_start and row.window_end else None
    return str(row.timezone), window
