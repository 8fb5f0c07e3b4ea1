"""results of what came back: an index led by the delivery's feedback and its time, so replies,
auto-replies, bounces and complaints per local day, engine and step, and the reply and bounce
rates of the deliveries sent in a window, are ranges of one index that holds every column they
read

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

FEEDBACK_INDEX = [
    "feedback",
    "feedback_at",
    "status",
    "updated_at",
    "engine_id",
    "run_id",
    "step",
]


def upgrade() -> None:
    op.create_index("ix_deliveries_feedback_at", "deliveries", FEEDBACK_INDEX)


def downgrade() -> None:
    op.drop_index("ix_deliveries_feedback_at", table_name="deliveries")
