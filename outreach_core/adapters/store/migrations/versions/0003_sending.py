"""sending: provider message ids and error classes in the ledger

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("provider_message_id", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("error_kind", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("error_kind")
        batch.drop_column("provider_message_id")
