"""A workflow's follow-up steps (2 to 5): read, replaced as a whole, or one added or removed."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import templates, workflow_steps
from outreach_core.domain.steps import StepDefinition, check_steps
from outreach_core.errors import InputError


def list_steps(conn: Connection, workflow_id: int) -> list[StepDefinition]:
    """The workflow's follow-up steps, in order (none: a one-step workflow)."""
    rows = conn.execute(
        sa.select(workflow_steps)
        .where(workflow_steps.c.workflow_id == workflow_id)
        .order_by(workflow_steps.c.step)
    )
    return [
        StepDefinition(
            step=row.step, template_id=row.template_id, delay_days=row.delay_days, thread=row.thread
        )
        for row in rows
    ]


def steps_of(conn: Connection, workflow_ids: Sequence[int]) -> dict[int, list[StepDefinition]]:
    """The follow-up steps of several workflows (workflow id -> steps in order)."""
    found: dict[int, list[StepDefinition]] = {}
    if not workflow_ids:
        return found
    rows = conn.execute(
        sa.select(workflow_steps)
        .where(workflow_steps.c.workflow_id.in_(list(workflow_ids)))
        .order_by(workflow_steps.c.workflow_id, workflow_steps.c.step)
    )
    for row in rows:
        found.setdefault(int(row.workflow_id), []).append(
            StepDefinition(
                step=row.step,
                template_id=row.template_id,
                delay_days=row.delay_days,
                thread=row.thread,
            )
        )
    return found


def replace_steps(conn: Connection, workflow_id: int, steps: Sequence[StepDefinition]) -> None:
    """The workflow's follow-up steps become `steps` (checked: 2, 3, ... without a gap, each
    with a template that exists)."""
    ordered = check_steps(steps)
    wanted = {s.template_id for s in ordered}
    known = set(
        conn.execute(sa.select(templates.c.id).where(templates.c.id.in_(list(wanted)))).scalars()
    )
    if missing := sorted(wanted - known):
        raise InputError(f"there is no template {missing[0]}; `templates` lists them")
    conn.execute(workflow_steps.delete().where(workflow_steps.c.workflow_id == workflow_id))
    if ordered:
        conn.execute(
            workflow_steps.insert(),
            [
                {
                    "workflow_id": workflow_id,
                    "step": s.step,
                    "template_id": s.template_id,
                    "delay_days": s.delay_days,
                    "thread": s.thread,
                }
                for s in ordered
            ],
        )
