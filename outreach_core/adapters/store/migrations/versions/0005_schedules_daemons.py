"""schedules: missed-slot policy, send window, last run; daemon heartbeats; SQL-backed audiences

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(
            sa.Column("missed_policy", sa.String(length=20), nullable=False, server_default="skip")
        )
        batch.add_column(
            sa.Column("late_window_hours", sa.Float(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("window_start", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("window_end", sa.String(length=5), nullable=True))
        batch.add_column(sa.Column("last_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_note", sa.Text(), nullable=True))
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_run_at"])
    op.create_table(
        "daemons",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_daemons"),
    )
    with op.batch_alter_table("audiences") as batch:
        batch.add_column(sa.Column("sql_source_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_audiences_sql_source_id_sql_sources", "sql_sources", ["sql_source_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("audiences") as batch:
        batch.drop_constraint("fk_audiences_sql_source_id_sql_sources", type_="foreignkey")
        batch.drop_column("sql_source_id")
    op.drop_table("daemons")
    op.drop_index("ix_schedules_due", table_name="schedules")
    with op.batch_alter_table("schedules") as batch:
        for column in (
            "last_note",
            "last_run_id",
            "window_end",
            "window_start",
            "late_window_hours",
            "missed_policy",
        ):
            batch.drop_column(column)
