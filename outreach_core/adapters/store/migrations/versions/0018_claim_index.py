"""claiming a run's pending deliveries reads them in id order from an index: the run and
status index gains the delivery id, so a claim (`WHERE run_id = ? AND status = 'pending'
ORDER BY id LIMIT n`) reads the first n rows of one index range instead of every pending row
of the run and sorting them, which slowed each claim as a large run grew

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_run_status", table_name="deliveries")
    op.create_index("ix_deliveries_run_status", "deliveries", ["run_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_run_status", table_name="deliveries")
    op.create_index("ix_deliveries_run_status", "deliveries", ["run_id", "status"])
