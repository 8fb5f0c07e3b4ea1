"""provider feedback on deliveries (bounce, complaint), where a suppression came from, and
when an engine's complaints were last reviewed

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("feedback", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_deliveries_provider_message_id", ["provider_message_id"])
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("source", sa.String(length=200), nullable=True))
    with op.batch_alter_table("engines") as batch:
        batch.add_column(
            sa.Column("complaints_reviewed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("engines") as batch:
        batch.drop_column("complaints_reviewed_at")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_provider_message_id")
        batch.drop_column("feedback_at")
        batch.drop_column("feedback")
