"""Workflows: audience + template + engine + send options."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.errors import NotFound
from outreach_core.models import SendOptions, Workflow
from outreach_core.store.tables import workflows


def _to_workflow(row: sa.Row) -> Workflow:
    data = dict(row._mapping)
    data["options"] = SendOptions.model_validate(data["options"])
    return Workflow.model_validate(data)


def insert_workflow(
    conn: Connection,
    *,
    name: str,
    audience_id: int,
    template_id: int,
    engine_id: int,
    options: SendOptions,
    now: datetime,
) -> int:
    """A new workflow; returns its id."""
    result = conn.execute(
        workflows.insert().values(
            name=name,
            audience_id=audience_id,
            template_id=template_id,
            engine_id=engine_id,
            options=options.model_dump(),
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def get_workflow(conn: Connection, workflow_id: int) -> Workflow:
    """The workflow, or NotFound."""
    row = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).first()
    if row is None:
        raise NotFound(f"there is no workflow {workflow_id}")
    return _to_workflow(row)


def list_workflows(conn: Connection) -> list[Workflow]:
    """All workflows by name."""
    return [
        _to_workflow(row) for row in conn.execute(sa.select(workflows).order_by(workflows.c.name))
    ]


def count_workflows(conn: Connection) -> int:
    """How many workflows exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(workflows)).scalar_one())


def workflow_names(conn: Connection, workflow_ids: list[int]) -> dict[int, str]:
    """Names of the given workflows by id."""
    query = sa.select(workflows.c.id, workflows.c.name).where(workflows.c.id.in_(workflow_ids))
    return {int(i): str(name) for i, name in conn.execute(query)}
