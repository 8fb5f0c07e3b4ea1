"""seen webhook events: the provider ids (SNS MessageId, SendGrid signed bytes, Mailgun token)
of the requests already taken, so a replay is refused also after a restart

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seen_webhook_events",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_key", name="pk_seen_webhook_events"),
    )
    op.create_index("ix_seen_webhook_events_seen_at", "seen_webhook_events", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_webhook_events_seen_at", table_name="seen_webhook_events")
    op.drop_table("seen_webhook_events")
