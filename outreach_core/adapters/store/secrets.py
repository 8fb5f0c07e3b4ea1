"""Every encrypted column in one place, for key rotation."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import engines, signing_keys, sql_sources

#: every (table, column) that holds a Fernet token; a new encrypted column must be listed here
#: or a key rotation would leave it unreadable
ENCRYPTED_COLUMNS: tuple[tuple[sa.Table, sa.Column], ...] = (
    (engines, engines.c.url_encrypted),
    (sql_sources, sql_sources.c.url_encrypted),
    (signing_keys, signing_keys.c.key_encrypted),
)


def reencrypt_all(conn: Connection, convert: Callable[[str], str]) -> dict[str, int]:
    """Replace every stored token by `convert(token)`; returns how many rows per table.

    Run inside one transaction: either every secret moves to the new key or none does.
    """
    done: dict[str, int] = {}
    for table, column in ENCRYPTED_COLUMNS:
        rows = conn.execute(sa.select(table.c.id, column).with_for_update()).all()
        for row_id, token in rows:
            conn.execute(
                table.update().where(table.c.id == row_id).values({column.name: convert(token)})
            )
        done[table.name] = len(rows)
    return done


def samples(conn: Connection) -> dict[str, tuple[int, str]]:
    """Per table holding secrets: how many rows and one token (the oldest row's), to check a
    key cheaply before anything uses it; tables without a secret are left out."""
    found: dict[str, tuple[int, str]] = {}
    for table, column in ENCRYPTED_COLUMNS:
        count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if count:
            token = conn.execute(sa.select(column).order_by(table.c.id).limit(1)).scalar_one()
            found[table.name] = (count, token)
    return found
