"""Provider requests already taken (webhook replay protection), kept as long as a request
could still pass the freshness check."""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import seen_webhook_events


def first_sighting(
    conn: Connection, provider: str, event_id: str, *, now: datetime, forget_before: datetime
) -> bool:
    """Note that `provider` sent `event_id`; True the first time, False for a repeat.

    Ids seen before `forget_before` are deleted first: the caller refuses requests that old
    anyway, and the table stays small. ON CONFLICT DO NOTHING makes two simultaneous
    deliveries of one id take turns on the key: exactly one of them sees it first.
    """
    conn.execute(seen_webhook_events.delete().where(seen_webhook_events.c.seen_at < forget_before))
    key = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = (
        insert(seen_webhook_events)
        .values(provider=provider, event_key=key, seen_at=now)
        .on_conflict_do_nothing(
            index_elements=[seen_webhook_events.c.provider, seen_webhook_events.c.event_key]
        )
    )
    # RETURNING rather than rowcount: psycopg reports no row count for this statement
    return conn.execute(statement.returning(seen_webhook_events.c.event_key)).first() is not None


def count_seen(conn: Connection, provider: str | None = None) -> int:
    """How many ids are kept (of one provider, or of all)."""
    query = sa.select(sa.func.count()).select_from(seen_webhook_events)
    if provider is not None:
        query = query.where(seen_webhook_events.c.provider == provider)
    return int(conn.execute(query).scalar_one())
