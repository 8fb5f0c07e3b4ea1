"""engine mailboxes read back (bounces, complaints, replies) and follow-up steps: the engine's
IMAP URL, each mailbox's high-water mark, the events read, workflow steps, and the step of each
run and delivery

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engines") as batch:
        batch.add_column(sa.Column("mailbox_url_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mailbox_display_url", sa.Text(), nullable=True))
    op.create_table(
        "workflow_steps",
        sa.Column("workflow_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("thread", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name="fk_workflow_steps_workflow_id_workflows",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"], ["templates.id"], name="fk_workflow_steps_template_id_templates"
        ),
        sa.PrimaryKeyConstraint("workflow_id", "step", name="pk_workflow_steps"),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("step", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("previous_run_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_runs_previous_run_id_runs", "runs", ["previous_run_id"], ["id"]
        )
        batch.create_unique_constraint("uq_runs_previous_run_id", ["previous_run_id"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("step", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("previous_delivery_id", sa.Integer(), nullable=True))
    op.create_table(
        "mailbox_states",
        sa.Column("engine_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("folder", sa.String(200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["engine_id"],
            ["engines.id"],
            name="fk_mailbox_states_engine_id_engines",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("engine_id", name="pk_mailbox_states"),
    )
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("message_key", sa.String(120), nullable=False),
        sa.Column("engine_id", sa.Integer(), nullable=True),
        sa.Column("email_normalized", sa.String(320), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column("evidence", sa.String(20), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name="fk_delivery_events_delivery_id_deliveries",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_events"),
        sa.UniqueConstraint(
            "message_key", "delivery_id", "kind", name="uq_delivery_events_message_delivery_kind"
        ),
    )
    op.create_index("ix_delivery_events_kind_at", "delivery_events", ["kind", "at"])
    op.create_index("ix_delivery_events_delivery", "delivery_events", ["delivery_id"])
    op.create_index(
        "ix_delivery_events_email_kind_at", "delivery_events", ["email_normalized", "kind", "at"]
    )


def downgrade() -> None:
    op.drop_table("delivery_events")
    op.drop_table("mailbox_states")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("previous_delivery_id")
        batch.drop_column("step")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_previous_run_id", type_="unique")
        batch.drop_constraint("fk_runs_previous_run_id_runs", type_="foreignkey")
        batch.drop_column("previous_run_id")
        batch.drop_column("step")
    op.drop_table("workflow_steps")
    with op.batch_alter_table("engines") as batch:
        batch.drop_column("mailbox_display_url")
        batch.drop_column("mailbox_url_encrypted")
