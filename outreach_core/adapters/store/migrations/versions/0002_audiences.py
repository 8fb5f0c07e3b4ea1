"""audiences: original column names, DNS domain cache and SQL sources

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audiences") as batch:
        batch.add_column(sa.Column("headers", sa.JSON(), nullable=True))
    op.create_table(
        "dns_cache",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("mx_host", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_dns_cache")),
    )
    op.create_index(op.f("ix_dns_cache_checked_at"), "dns_cache", ["checked_at"], unique=False)
    op.create_table(
        "sql_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url_encrypted", sa.Text(), nullable=False),
        sa.Column("display_url", sa.String(length=500), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("row_cap", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sql_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sql_sources_name")),
    )


def downgrade() -> None:
    op.drop_table("sql_sources")
    op.drop_index(op.f("ix_dns_cache_checked_at"), table_name="dns_cache")
    op.drop_table("dns_cache")
    with op.batch_alter_table("audiences") as batch:
        batch.drop_column("headers")
