"""Every encrypted column in one place, for key rotation."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import (
    engines,
    secret_key_check,
    signing_keys,
    sql_sources,
)

#: every (table, column) that holds a Fernet token; a new encrypted column must be listed here
#: or a key rotation would leave it unreadable
ENCRYPTED_COLUMNS: tuple[tuple[sa.Table, sa.Column], ...] = (
    (engines, engines.c.url_encrypted),
    (sql_sources, sql_sources.c.url_encrypted),
    (signing_keys, signing_keys.c.key_encrypted),
    # nullable: only the SMTP engines that name a mailbox have one
    (engines, engines.c.mailbox_url_encrypted),
)


def _label(table: sa.Table, column: sa.Column) -> str:
    """The name a column's count is reported under: its table's, or for a second encrypted
    column of the same table, the table and column."""
    first = next(c for t, c in ENCRYPTED_COLUMNS if t is table)
    return table.name if column is first else f"{table.name}.{column.name}"


def reencrypt_all(conn: Connection, convert: Callable[[str], str]) -> dict[str, int]:
    """Replace every stored token by `convert(token)`; returns how many rows per table.

    Run inside one transaction: either every secret moves to the new key or none does.
    """
    done: dict[str, int] = {}
    for table, column in ENCRYPTED_COLUMNS:
        rows = conn.execute(
            sa.select(table.c.id, column).where(column.is_not(None)).with_for_update()
        ).all()
        for row_id, token in rows:
            conn.execute(
                table.update().where(table.c.id == row_id).values({column.name: convert(token)})
            )
        if rows or _label(table, column) == table.name:
            done[_label(table, column)] = len(rows)
    return done


def samples(conn: Connection) -> dict[str, tuple[int, str]]:
    """Per table holding secrets: how many rows and one token (the oldest row's), to check a
    key cheaply before anything uses it; tables without a secret are left out."""
    found: dict[str, tuple[int, str]] = {}
    for table, column in ENCRYPTED_COLUMNS:
        present = column.is_not(None)
        count = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(present)
        ).scalar_one()
        if count:
            token = conn.execute(
                sa.select(column).where(present).order_by(table.c.id).limit(1)
            ).scalar_one()
            found[_label(table, column)] = (count, token)
    return found


#: the one row of `secret_key_check`
KEY_CHECK_ID = 1


def lock_key_check(conn: Connection) -> str | None:
    """Lock the key check row for the caller's transaction and return its token (None before
    the first secret is stored).

    A write (that changes nothing) rather than SELECT FOR UPDATE: it takes SQLite's write lock
    too, which a SELECT does not. rotate-key locks it before reading any secret and rewrites it
    under the new key; a process storing a secret locks it before encrypting: so either the
    rotation re-encrypts that secret, or the process sees the new token and the new key.
    """
    conn.execute(
        secret_key_check.update()
        .where(secret_key_check.c.id == KEY_CHECK_ID)
        .values(token_encrypted=secret_key_check.c.token_encrypted)
    )
    return conn.execute(
        sa.select(secret_key_check.c.token_encrypted).where(secret_key_check.c.id == KEY_CHECK_ID)
    ).scalar_one_or_none()


def set_key_check(conn: Connection, token: str) -> None:
    """Store the key check token (under the key the secrets are under from this transaction)."""
    conn.execute(
        secret_key_check.update()
        .where(secret_key_check.c.id == KEY_CHECK_ID)
        .values(token_encrypted=token)
    )
