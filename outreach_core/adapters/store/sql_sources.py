"""Saved SQL sources: the URL encrypted, a masked copy for display, the query and its values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import sql_sources
from outreach_core.errors import NotFound

#: what is shown of a source: everything but the encrypted URL
_SHOWN = [c for c in sql_sources.c if c.name != "url_encrypted"]


def upsert_source(conn: Connection, *, name: str, now: datetime, **values: Any) -> int:
    """Create or replace the source with this name; returns its id."""
    existing = conn.execute(sa.select(sql_sources.c.id).where(sql_sources.c.name == name)).first()
    if existing:
        conn.execute(
            sql_sources.update()
            .where(sql_sources.c.id == existing.id)
            .values(**values, updated_at=now)
        )
        return int(existing.id)
    inserted = conn.execute(
        sql_sources.insert().values(name=name, created_at=now, updated_at=now, **values)
    )
    return int(inserted.inserted_primary_key[0])


def list_sources(conn: Connection) -> list[dict[str, Any]]:
    """Every source by name, without its encrypted URL."""
    rows = conn.execute(sa.select(*_SHOWN).order_by(sql_sources.c.name)).mappings()
    return [dict(row) for row in rows]


def get_source(conn: Connection, source_id: int) -> tuple[dict[str, Any], str]:
    """(the source without its URL, the encrypted URL)."""
    row = conn.execute(sa.select(sql_sources).where(sql_sources.c.id == source_id)).mappings()
    found = row.first()
    if found is None:
        raise NotFound(f"no SQL source {source_id}")
    data = dict(found)
    return {k: v for k, v in data.items() if k != "url_encrypted"}, data["url_encrypted"]
