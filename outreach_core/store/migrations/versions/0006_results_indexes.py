"""results: the reply code and send latency per delivery, and the indexes the Results page reads

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("reply_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
    op.create_index(
        "ix_deliveries_updated_status",
        "deliveries",
        ["updated_at", "status", "run_id", "engine_id", "email_normalized"],
    )
    op.create_index("ix_deliveries_email_normalized", "deliveries", ["email_normalized"])
    op.create_index("ix_deliveries_email", "deliveries", ["email"])
    op.create_index("ix_deliveries_run_latency", "deliveries", ["run_id", "latency_ms"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_index("ix_deliveries_run_latency", table_name="deliveries")
    op.drop_index("ix_deliveries_email", table_name="deliveries")
    op.drop_index("ix_deliveries_email_normalized", table_name="deliveries")
    op.drop_index("ix_deliveries_updated_status", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("latency_ms")
        batch.drop_column("reply_code")
