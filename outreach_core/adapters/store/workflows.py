"""Workflows: audience + template + engine(s) + send options, with a stable key."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import (
    schedules,
    workflow_engines,
    workflow_steps,
    workflows,
)
from outreach_core.domain.models import SendOptions, Workflow, check_workflow_key
from outreach_core.errors import InputError, NotFound


def key_from_name(name: str) -> str:
    """A key a user can type in a URL or a shell: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:100] or "workflow"


def _engine_ids(conn: Connection, workflow_ids: Sequence[int]) -> dict[int, list[int]]:
    query = (
        sa.select(workflow_engines.c.workflow_id, workflow_engines.c.engine_id)
        .where(workflow_engines.c.workflow_id.in_(list(workflow_ids)))
        .order_by(workflow_engines.c.workflow_id, workflow_engines.c.position)
    )
    found: dict[int, list[int]] = {}
    for workflow_id, engine_id in conn.execute(query):
        found.setdefault(int(workflow_id), []).append(int(engine_id))
    return found


def _to_workflows(conn: Connection, rows: Sequence[sa.Row]) -> list[Workflow]:
    engine_ids = _engine_ids(conn, [row.id for row in rows])
    result = []
    for row in rows:
        data = dict(row._mapping)
        data["options"] = SendOptions.from_stored(data["options"])
        data["engine_ids"] = engine_ids.get(row.id) or [row.engine_id]
        result.append(Workflow.model_validate(data))
    return result


def _unique_key(conn: Connection, wanted: str) -> str:
    taken = set(
        conn.execute(sa.select(workflows.c.key).where(workflows.c.key.like(f"{wanted}%"))).scalars()
    )
    if wanted not in taken:
        return wanted
    suffix = 2
    while f"{wanted}-{suffix}" in taken:
        suffix += 1
    return f"{wanted}-{suffix}"


def set_engines(conn: Connection, workflow_id: int, engine_ids: Sequence[int]) -> None:
    """Replace the workflow's engines (in order of preference); the first is its `engine_id`."""
    if not engine_ids:
        raise InputError("a workflow needs at least one engine")
    if len(set(engine_ids)) != len(engine_ids):
        raise InputError("each engine may be named once per workflow")
    conn.execute(workflow_engines.delete().where(workflow_engines.c.workflow_id == workflow_id))
    conn.execute(
        workflow_engines.insert(),
        [
            {"workflow_id": workflow_id, "engine_id": engine_id, "position": position}
            for position, engine_id in enumerate(engine_ids)
        ],
    )
    conn.execute(
        workflows.update().where(workflows.c.id == workflow_id).values(engine_id=engine_ids[0])
    )


def insert_workflow(
    conn: Connection,
    *,
    name: str,
    audience_id: int,
    template_id: int,
    engine_id: int | None = None,
    engine_ids: Sequence[int] | None = None,
    options: SendOptions,
    now: datetime,
    key: str | None = None,
) -> int:
    """A new workflow; returns its id. Without a key one is made from the name."""
    ids = list(engine_ids or ([engine_id] if engine_id is not None else []))
    if not ids:
        raise InputError("a workflow needs at least one engine")
    chosen = check_workflow_key(key) if key else _unique_key(conn, key_from_name(name))
    result = conn.execute(
        workflows.insert().values(
            name=name,
            key=chosen,
            audience_id=audience_id,
            template_id=template_id,
            engine_id=ids[0],
            options=options.model_dump(mode="json"),
            created_at=now,
        )
    )
    workflow_id = int(result.inserted_primary_key[0])
    set_engines(conn, workflow_id, ids)
    return workflow_id


def get_workflow(conn: Connection, workflow_id: int) -> Workflow:
    """The workflow, or NotFound."""
    row = conn.execute(sa.select(workflows).where(workflows.c.id == workflow_id)).first()
    if row is None:
        raise NotFound(f"there is no workflow {workflow_id}")
    return _to_workflows(conn, [row])[0]


def get_workflow_by_key(conn: Connection, key: str) -> Workflow:
    """The workflow with this stable key, or NotFound."""
    row = conn.execute(sa.select(workflows).where(workflows.c.key == key)).first()
    if row is None:
        raise NotFound(f"there is no workflow with key {key!r}")
    return _to_workflows(conn, [row])[0]


def list_workflows(conn: Connection) -> list[Workflow]:
    """All workflows by name."""
    rows = conn.execute(sa.select(workflows).order_by(workflows.c.name)).all()
    return _to_workflows(conn, rows)


def count_workflows(conn: Connection) -> int:
    """How many workflows exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(workflows)).scalar_one())


def workflow_names(conn: Connection, workflow_ids: list[int]) -> dict[int, str]:
    """Names of the given workflows by id."""
    query = sa.select(workflows.c.id, workflows.c.name).where(workflows.c.id.in_(workflow_ids))
    return {int(i): str(name) for i, name in conn.execute(query)}


def update_workflow(
    conn: Connection,
    workflow_id: int,
    *,
    name: str,
    key: str,
    audience_id: int,
    template_id: int,
    engine_ids: Sequence[int],
    options: SendOptions,
) -> None:
    """Replace a workflow's parts and options; its id (and so its runs) stay."""
    result = conn.execute(
        workflows.update()
        .where(workflows.c.id == workflow_id)
        .values(
            name=name,
            key=check_workflow_key(key),
            audience_id=audience_id,
            template_id=template_id,
            options=options.model_dump(mode="json"),
        )
    )
    if result.rowcount != 1:
        raise NotFound(f"there is no workflow {workflow_id}")
    set_engines(conn, workflow_id, engine_ids)


def delete_workflow(conn: Connection, workflow_id: int) -> None:
    """Remove a workflow with its engine list and schedules (the caller checked it has no runs)."""
    conn.execute(workflow_engines.delete().where(workflow_engines.c.workflow_id == workflow_id))
    conn.execute(schedules.delete().where(schedules.c.workflow_id == workflow_id))
    conn.execute(workflow_steps.delete().where(workflow_steps.c.workflow_id == workflow_id))
    result = conn.execute(workflows.delete().where(workflows.c.id == workflow_id))
    if result.rowcount != 1:
        raise NotFound(f"there is no workflow {workflow_id}")
