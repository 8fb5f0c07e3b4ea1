"""Signing keys, one per purpose, stored only as Fernet tokens (the caller encrypts)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import signing_keys


def get_encrypted(conn: Connection, purpose: str) -> str | None:
    """The stored (encrypted) key for `purpose`, or None when there is none yet."""
    return conn.execute(
        sa.select(signing_keys.c.key_encrypted).where(signing_keys.c.purpose == purpose)
    ).scalar_one_or_none()


def add_if_absent(conn: Connection, purpose: str, key_encrypted: str, *, now: datetime) -> bool:
    """Store a key for `purpose` unless one is there already; True when this one was stored.

    ON CONFLICT DO NOTHING rather than catching the unique violation: on PostgreSQL a failed
    INSERT aborts the transaction, and the caller still has to read the winner's key in it.
    """
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = (
        insert(signing_keys)
        .values(purpose=purpose, key_encrypted=key_encrypted, created_at=now)
        .on_conflict_do_nothing(index_elements=[signing_keys.c.purpose])
        # RETURNING says whether this row went in on every driver; a rowcount may not
        .returning(signing_keys.c.purpose)
    )
    return conn.execute(statement).first() is not None
