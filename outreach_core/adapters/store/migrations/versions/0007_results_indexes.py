"""results: reply code, send latency and recipient domain per delivery, and the indexes the
Results page and Home's KPIs read

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_deliveries_status_updated": ["status", "updated_at"],
    "ix_deliveries_domain_status": ["domain", "status", "updated_at"],
    "ix_deliveries_engine_status": ["engine_id", "status", "updated_at", "run_id"],
    "ix_deliveries_updated_at": ["updated_at"],
    "ix_deliveries_email_normalized": ["email_normalized"],
    "ix_deliveries_email": ["email"],
    "ix_deliveries_run_latency": ["run_id", "latency_ms"],
}


def _domain_of(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """The part after the @ of a normalised address, as this migration computed it: written
    out here so that later changes to the application's queries never change this migration."""
    position = "instr" if dialect == "sqlite" else "strpos"
    return sa.func.substr(column, getattr(sa.func, position)(column, "@") + 1)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("reply_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("domain", sa.String(length=255), nullable=True))
    deliveries = sa.table("deliveries", sa.column("email_normalized"), sa.column("domain"))
    bind = op.get_bind()
    bind.execute(
        deliveries.update()
        .where(deliveries.c.email_normalized.is_not(None))
        .values(domain=_domain_of(deliveries.c.email_normalized, bind.dialect.name))
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "deliveries", columns)
    op.create_index("ix_runs_created_at", "runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_at", table_name="runs")
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("domain")
        batch.drop_column("latency_ms")
        batch.drop_column("reply_code")
