"""The column types and naming rules every table shares (`tables`, `feedback_tables`)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def created_column() -> sa.Column:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


def ordered_text(length: int | None = None) -> sa.types.TypeEngine[str]:
    """Text that sorts character by character on every backend, whatever the database's locale.

    The ledger's address search and reason filter are index ranges (`email >= 'ann' AND
    email < 'ano'`, `reason >= 'a:' AND reason < 'a;'`), which hold only under that order.
    SQLite compares bytes already; a PostgreSQL database created with a language locale (en_US,
    ICU) would not, so there the column is collated "C".
    """
    plain = sa.String(length) if length else sa.Text()
    c_order = sa.String(length, collation="C") if length else sa.Text(collation="C")
    return plain.with_variant(c_order, "postgresql")
