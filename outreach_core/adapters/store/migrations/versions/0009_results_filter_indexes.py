"""results filters: the status and domain indexes also hold engine_id and run_id (a workflow or
engine filter is checked in the index), the address indexes updated_at (the search's range),
and an index led by the reason (the reason filter and the reason words present); on PostgreSQL
the address and reason columns are collated "C", so those index ranges hold under any locale

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: index name: (columns before, columns after)
WIDENED = {
    "ix_deliveries_status_updated": (
        ["status", "updated_at"],
        ["status", "updated_at", "engine_id", "run_id"],
    ),
    "ix_deliveries_domain_status": (
        ["domain", "status", "updated_at"],
        ["domain", "status", "updated_at", "engine_id", "run_id"],
    ),
    "ix_deliveries_email_normalized": (["email_normalized"], ["email_normalized", "updated_at"]),
    "ix_deliveries_email": (["email"], ["email", "updated_at"]),
}
REASON_INDEX = ["reason", "updated_at", "status", "engine_id", "run_id"]


#: columns searched by index ranges: (name, SQL type)
ORDERED_COLUMNS = {"email": "varchar(320)", "email_normalized": "varchar(320)", "reason": "text"}


def _collate(collation: str) -> None:
    if op.get_context().dialect.name != "postgresql":
        return  # SQLite compares text byte by byte already
    for column, sql_type in ORDERED_COLUMNS.items():
        op.execute(
            f'ALTER TABLE deliveries ALTER COLUMN {column} TYPE {sql_type} COLLATE "{collation}"'
        )


def upgrade() -> None:
    _collate("C")
    for name, (_, after) in WIDENED.items():
        op.drop_index(name, table_name="deliveries")
        op.create_index(name, "deliveries", after)
    op.create_index("ix_deliveries_reason", "deliveries", REASON_INDEX)


def downgrade() -> None:
    op.drop_index("ix_deliveries_reason", table_name="deliveries")
    for name, (before, _) in WIDENED.items():
        op.drop_index(name, table_name="deliveries")
        op.create_index(name, "deliveries", before)
    _collate("default")
