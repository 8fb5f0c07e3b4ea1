"""secret key check: one row holding a token under the key the stored secrets are under, which
rotate-key locks first and rewrites, and which a process storing a secret locks and checks

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "secret_key_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_secret_key_check"),
    )
    # the one row always exists, so there is always a row to lock; its token is written by the
    # first process that stores a secret (the migration has no key)
    op.bulk_insert(table, [{"id": 1, "token_encrypted": None}])


def downgrade() -> None:
    op.drop_table("secret_key_check")
