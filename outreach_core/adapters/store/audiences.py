"""Audiences and their rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import audience_rows, audiences, workflows
from outreach_core.domain.models import Audience
from outreach_core.errors import InputError, NotFound

INSERT_CHUNK = 500
READ_CHUNK = 2_000


def insert_audience(
    conn: Connection,
    *,
    name: str,
    source: str,
    email_column: str,
    columns: list[str],
    rows: list[dict[str, Any]],
    now: datetime,
    headers: list[str] | None = None,
) -> int:
    """Store an audience and its rows (numbered from 1 as in the file); returns its id.

    Names are unique: a name in use is an InputError that says so."""
    audience_id = create_audience(
        conn,
        name=name,
        source=source,
        email_column=email_column,
        columns=columns,
        headers=headers,
        now=now,
    )
    for start in range(0, len(rows), INSERT_CHUNK):
        append_rows(conn, audience_id, rows[start : start + INSERT_CHUNK], first_number=start + 1)
    set_row_count(conn, audience_id, len(rows))
    return audience_id


def create_audience(
    conn: Connection,
    *,
    name: str,
    source: str,
    email_column: str,
    columns: list[str],
    now: datetime,
    headers: list[str] | None = None,
) -> int:
    """Store an audience without rows yet (`append_rows`, then `set_row_count`); its id.
    A name in use is an InputError that says so."""
    if find_audience(conn, name):
        raise InputError(f"an audience named {name!r} exists already; choose another name")
    return int(
        conn.execute(
            audiences.insert().values(
                name=name,
                source=source,
                email_column=email_column,
                columns=columns,
                headers=headers or None,
                row_count=0,
                created_at=now,
            )
        ).inserted_primary_key[0]
    )


def append_rows(
    conn: Connection, audience_id: int, rows: list[dict[str, Any]], *, first_number: int
) -> None:
    """Store more rows of an audience, numbered from `first_number` (a chunk of a stream)."""
    for start in range(0, len(rows), INSERT_CHUNK):
        conn.execute(
            audience_rows.insert(),
            [
                {"audience_id": audience_id, "row_number": first_number + start + i, "data": data}
                for i, data in enumerate(rows[start : start + INSERT_CHUNK])
            ],
        )


def set_row_count(conn: Connection, audience_id: int, row_count: int) -> None:
    """The audience's row count, once its rows were stored chunk by chunk."""
    conn.execute(
        audiences.update().where(audiences.c.id == audience_id).values(row_count=row_count)
    )


def get_audience(conn: Connection, audience_id: int) -> Audience:
    """The audience, or NotFound."""
    row = conn.execute(sa.select(audiences).where(audiences.c.id == audience_id)).first()
    if row is None:
        raise NotFound(f"there is no audience {audience_id}")
    return Audience.model_validate(dict(row._mapping))


def find_audience(conn: Connection, name: str) -> Audience | None:
    """The audience with this name, if any."""
    row = conn.execute(sa.select(audiences).where(audiences.c.name == name)).first()
    return Audience.model_validate(dict(row._mapping)) if row else None


def list_audiences(conn: Connection) -> list[Audience]:
    """All audiences by name."""
    rows = conn.execute(sa.select(audiences).order_by(audiences.c.name))
    return [Audience.model_validate(dict(row._mapping)) for row in rows]


def iter_rows(conn: Connection, audience_id: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, data) for every row, in file order, read READ_CHUNK at a time (a
    server-side cursor on PostgreSQL), so a large audience is never held whole."""
    query = (
        sa.select(audience_rows.c.row_number, audience_rows.c.data)
        .where(audience_rows.c.audience_id == audience_id)
        .order_by(audience_rows.c.row_number)
        .execution_options(yield_per=READ_CHUNK)
    )
    for number, data in conn.execute(query):
        yield int(number), data


def page_rows(
    conn: Connection, audience_id: int, *, offset: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """(row number, data) of `limit` rows from the `offset`-th, in file order: one page read
    by the database (row numbers run from 1 without gaps, so a range of them is the page)."""
    query = (
        sa.select(audience_rows.c.row_number, audience_rows.c.data)
        .where(
            audience_rows.c.audience_id == audience_id,
            audience_rows.c.row_number > offset,
            audience_rows.c.row_number <= offset + limit,
        )
        .order_by(audience_rows.c.row_number)
    )
    return [(int(number), data) for number, data in conn.execute(query)]


def first_row_containing(
    conn: Connection, audience_id: int, column: str, needle: str
) -> tuple[int, dict[str, Any]] | None:
    """The first row (in file order) whose `column` cell contains `needle`, case aside."""
    value = audience_rows.c.data[column].as_string()
    escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        sa.select(audience_rows.c.row_number, audience_rows.c.data)
        .where(
            audience_rows.c.audience_id == audience_id,
            sa.func.lower(value).like(f"%{escaped}%", escape="\\"),
        )
        .order_by(audience_rows.c.row_number)
        .limit(1)
    )
    row = conn.execute(query).first()
    return (int(row[0]), row[1]) if row else None


def rows_with_cells(
    conn: Connection, audience_id: int, column: str, cells: list[str], *, before: int
) -> list[tuple[int, str]]:
    """(row number, cell) of the rows numbered up to `before` whose `column` cell, trimmed
    and lower-cased, is one of `cells` (a page's duplicates looked up)."""
    value = audience_rows.c.data[column].as_string()
    found: list[tuple[int, str]] = []
    for start in range(0, len(cells), 500):
        query = sa.select(audience_rows.c.row_number, value).where(
            audience_rows.c.audience_id == audience_id,
            audience_rows.c.row_number <= before,
            sa.func.lower(sa.func.trim(value)).in_(cells[start : start + 500]),
        )
        found += [(int(number), str(cell or "")) for number, cell in conn.execute(query)]
    return found


def iter_rows_chunked(
    conn: Connection, audience_id: int, *, chunk: int = 5_000
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """Every row in file order, `chunk` rows per query (keyset on the row number): memory
    bounded by one chunk whatever the driver buffers."""
    after = 0
    while True:
        query = (
            sa.select(audience_rows.c.row_number, audience_rows.c.data)
            .where(audience_rows.c.audience_id == audience_id, audience_rows.c.row_number > after)
            .order_by(audience_rows.c.row_number)
            .limit(chunk)
        )
        rows = [(int(number), data) for number, data in conn.execute(query)]
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def link_sql_source(conn: Connection, audience_id: int, source_id: int) -> None:
    """Make the audience a saved SQL query: each run re-runs the source."""
    conn.execute(
        audiences.update().where(audiences.c.id == audience_id).values(sql_source_id=source_id)
    )


def count_audiences(conn: Connection) -> int:
    """How many audiences exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(audiences)).scalar_one())


def rename_audience(conn: Connection, audience_id: int, name: str) -> None:
    """Give the audience a new name (unique, not empty), or an InputError saying why."""
    name = name.strip()
    if not name:
        raise InputError("an audience needs a name; type one")
    taken = find_audience(conn, name)
    if taken is not None and taken.id != audience_id:
        raise InputError(f"an audience named {name!r} exists already; choose another name")
    get_audience(conn, audience_id)
    conn.execute(audiences.update().where(audiences.c.id == audience_id).values(name=name))


def workflows_using(conn: Connection, audience_id: int) -> list[str]:
    """The names of the workflows that send to this audience."""
    query = (
        sa.select(workflows.c.name)
        .where(workflows.c.audience_id == audience_id)
        .order_by(workflows.c.name)
    )
    return [str(name) for name in conn.execute(query).scalars()]


def delete_audience(conn: Connection, audience_id: int) -> None:
    """Delete the audience and its rows; refused (InputError naming them) while a workflow
    sends to it."""
    audience = get_audience(conn, audience_id)
    users = workflows_using(conn, audience_id)
    if users:
        raise InputError(
            f"audience {audience.name!r} is used by the workflow{'s' if len(users) > 1 else ''} "
            f"{', '.join(repr(u) for u in users)}: give the workflow another audience or delete "
            "it first"
        )
    conn.execute(audience_rows.delete().where(audience_rows.c.audience_id == audience_id))
    conn.execute(audiences.delete().where(audiences.c.id == audience_id))
