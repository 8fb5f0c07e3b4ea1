"""Every encrypted column in one place, for key rotation."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.store.tables import engines, sql_sources

#: the tables that hold a Fernet token in `url_encrypted`
ENCRYPTED_TABLES = (engines, sql_sources)


def reencrypt_all(conn: Connection, convert: Callable[[str], str]) -> dict[str, int]:
    """Replace every stored token by `convert(token)`; returns how many rows per table.

    Run inside one transaction: either every secret moves to the new key or none does.
    """
    done: dict[str, int] = {}
    for table in ENCRYPTED_TABLES:
        rows = conn.execute(sa.select(table.c.id, table.c.url_encrypted).with_for_update()).all()
        for row_id, token in rows:
            conn.execute(
                table.update().where(table.c.id == row_id).values(url_encrypted=convert(token))
            )
        done[table.name] = len(rows)
    return done
