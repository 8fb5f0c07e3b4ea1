"""limits shared by every sending process: a rate state row per engine, recipient domain and
run, and an engine's concurrency slots leased to the processes sending through it

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_states",
        sa.Column("bucket", sa.String(300), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name="pk_rate_limit_states"),
    )
    op.create_index("ix_rate_limit_states_tat", "rate_limit_states", ["tat"])
    op.create_table(
        "engine_leases",
        sa.Column("engine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["engine_id"],
            ["engines.id"],
            name="fk_engine_leases_engine_id_engines",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("engine_id", "slot", name="pk_engine_leases"),
    )


def downgrade() -> None:
    op.drop_table("engine_leases")
    op.drop_index("ix_rate_limit_states_tat", table_name="rate_limit_states")
    op.drop_table("rate_limit_states")
