"""engine limits, several engines per workflow, a stable workflow key, the engine per delivery

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "workflow"


def upgrade() -> None:
    with op.batch_alter_table("engines") as batch:
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("key", sa.String(length=100), nullable=True))
    op.create_table(
        "workflow_engines",
        sa.Column(
            "workflow_id",
            sa.Integer(),
            sa.ForeignKey("workflows.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("engine_id", sa.Integer(), sa.ForeignKey("engines.id"), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("engine_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    workflows = sa.table(
        "workflows", sa.column("id", sa.Integer), sa.column("name"), sa.column("key")
    )
    taken: set[str] = set()
    for workflow_id, name, _ in conn.execute(sa.select(workflows)).all():
        key = _slug(name)
        if key in taken:
            key = f"{key}-{workflow_id}"
        taken.add(key)
        conn.execute(workflows.update().where(workflows.c.id == workflow_id).values(key=key))
    conn.execute(
        sa.text(
            "INSERT INTO workflow_engines (workflow_id, engine_id, position) "
            "SELECT id, engine_id, 0 FROM workflows"
        )
    )
    op.execute(
        "UPDATE deliveries SET engine_id = "
        "(SELECT runs.engine_id FROM runs WHERE runs.id = deliveries.run_id)"
    )
    with op.batch_alter_table("workflows") as batch:
        batch.alter_column("key", existing_type=sa.String(length=100), nullable=False)
        batch.create_unique_constraint("uq_workflows_key", ["key"])
    op.create_index("ix_deliveries_engine_sent", "deliveries", ["engine_id", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_engine_sent", table_name="deliveries")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("resume_at")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("engine_id")
    op.drop_table("workflow_engines")
    with op.batch_alter_table("workflows") as batch:
        batch.drop_constraint("uq_workflows_key", type_="unique")
        batch.drop_column("key")
    with op.batch_alter_table("engines") as batch:
        batch.drop_column("limits")
