"""Engines: stored with their URL encrypted and a masked copy for display."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import engines
from outreach_core.adapters.url_secrets import mask_url
from outreach_core.domain.models import Engine, EngineLimits
from outreach_core.errors import NotFound

_PUBLIC = [
    engines.c.id,
    engines.c.name,
    engines.c.kind,
    engines.c.display_url,
    engines.c.from_email,
    engines.c.from_name,
    engines.c.limits,
]


def _to_engine(row: sa.Row) -> Engine:
    data = dict(row._mapping)
    data.pop("url_encrypted", None)
    data["limits"] = EngineLimits.model_validate(data["limits"] or {})
    # masked again as read: a display form saved by an older, laxer mask shows nothing either
    data["display_url"] = mask_url(data["display_url"])
    return Engine.model_validate(data)


def upsert_engine(
    conn: Connection,
    *,
    name: str,
    kind: str,
    url_encrypted: str,
    display_url: str,
    from_email: str,
    from_name: str,
    now: datetime,
    limits: EngineLimits | None = None,
) -> int:
    """Create the named engine, or replace its settings; returns its id."""
    values = {
        "kind": kind,
        "url_encrypted": url_encrypted,
        "display_url": display_url,
        "from_email": from_email,
        "from_name": from_name,
    }
    existing = conn.execute(sa.select(engines.c.id).where(engines.c.name == name)).scalar()
    if existing is None:
        return insert_engine(conn, name=name, now=now, limits=limits, **values)
    conn.execute(
        engines.update()
        .where(engines.c.id == existing)
        .values(**values, limits=_limits_json(limits))
    )
    return int(existing)


def insert_engine(
    conn: Connection,
    *,
    name: str,
    kind: str,
    url_encrypted: str,
    display_url: str,
    from_email: str,
    from_name: str,
    now: datetime,
    limits: EngineLimits | None = None,
) -> int:
    """Create an engine under a new name (IntegrityError when the name is taken); its id."""
    result = conn.execute(
        engines.insert().values(
            name=name,
            kind=kind,
            url_encrypted=url_encrypted,
            display_url=display_url,
            from_email=from_email,
            from_name=from_name,
            limits=_limits_json(limits),
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def _limits_json(limits: EngineLimits | None) -> dict[str, object]:
    """The limits as stored (JSON); none given: the defaults."""
    return (limits or EngineLimits()).model_dump(mode="json")


def engines_named(conn: Connection, base: str, *, prefix: str) -> list[tuple[Engine, str]]:
    """The engine named `base` and those whose name starts with `base + prefix` (its
    versions), each with its encrypted URL, oldest first."""
    start = base + prefix
    rows = conn.execute(
        sa.select(*_PUBLIC, engines.c.url_encrypted)
        .where(
            sa.or_(
                engines.c.name == base,
                sa.func.substr(engines.c.name, 1, len(start)) == start,
            )
        )
        .order_by(engines.c.id)
    )
    return [(_to_engine(row), str(row.url_encrypted)) for row in rows]


def get_engine(conn: Connection, engine_id: int) -> Engine:
    """The engine without its secret."""
    row = conn.execute(sa.select(*_PUBLIC).where(engines.c.id == engine_id)).first()
    if row is None:
        raise NotFound(f"there is no engine {engine_id}")
    return _to_engine(row)


def set_limits(conn: Connection, engine_id: int, limits: EngineLimits) -> None:
    """Replace the engine's limits, keeping its URL and secret."""
    result = conn.execute(
        engines.update()
        .where(engines.c.id == engine_id)
        .values(limits=limits.model_dump(mode="json"))
    )
    if result.rowcount == 0:
        raise NotFound(f"there is no engine {engine_id}")


def get_encrypted_url(conn: Connection, engine_id: int) -> str:
    """The engine's URL as stored (encrypted); only the sender factory decrypts it."""
    value = conn.execute(
        sa.select(engines.c.url_encrypted).where(engines.c.id == engine_id)
    ).scalar()
    if value is None:
        raise NotFound(f"there is no engine {engine_id}")
    return str(value)


def list_engines(conn: Connection) -> list[Engine]:
    """All engines by name, secrets masked."""
    rows = conn.execute(sa.select(*_PUBLIC).order_by(engines.c.name))
    return [_to_engine(row) for row in rows]


def count_engines(conn: Connection) -> int:
    """How many engines exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(engines)).scalar_one())


def lock_engines(conn: Connection, engine_ids: list[int]) -> None:
    """Hold the engines until the transaction ends, so executors sharing an engine read and
    use its daily quota in turn. PostgreSQL: row locks in id order (two executors never wait
    on each other crosswise). SQLite: a no-op UPDATE takes the database's write lock before the
    quota is read (a SELECT alone would not start the write transaction)."""
    if not engine_ids:
        return
    if conn.dialect.name == "sqlite":
        conn.execute(engines.update().where(engines.c.id.in_(engine_ids)).values(id=engines.c.id))
        return
    conn.execute(
        sa.select(engines.c.id)
        .where(engines.c.id.in_(engine_ids))
        .order_by(engines.c.id)
        .with_for_update()
    ).all()


def set_sender(conn: Connection, engine_id: int, *, from_email: str, from_name: str) -> None:
    """Replace the engine's From address and name, keeping its URL and secret."""
    result = conn.execute(
        engines.update()
        .where(engines.c.id == engine_id)
        .values(from_email=from_email, from_name=from_name)
    )
    if result.rowcount == 0:
        raise NotFound(f"there is no engine {engine_id}")
