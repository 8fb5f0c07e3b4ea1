"""Audiences from a SQL source keep every row the query returned, each with its status and
reason, as an uploaded file's audience does: imported once (the Test query's Import) or saved
as a recurring audience. Each test runs with the workspace and the source on SQLite, then both
on the PostgreSQL server (a schema each)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core.adapters.workspace import Workspace
from outreach_core.errors import InputError
from outreach_core.services import audiences as audience_service
from outreach_core.services import sources
from outreach_core.ui.audience_views import audience_frame

from conftest import fresh_schema

ACTOR = "test"
QUERY = "SELECT email, name FROM people ORDER BY id"
PEOPLE = [
    (1, "ann@example.com", "Ann"),
    (2, "ANN@Example.com", "Ann again"),
    (3, None, "Nobody"),
    (4, "not an address", "Bad"),
    (5, "bob@example.org", "Bob"),
]
#: (row, email, status, reason, name) as Saved audiences and its download show them
EXPECTED = [
    ["1", "ann@example.com", "accepted", "", "Ann"],
    ["2", "ANN@Example.com", "duplicate", "same address as row 1", "Ann again"],
    ["3", "", "rejected", "no email", "Nobody"],
    ["4", "not an address", "rejected", "An email address must have an @-sign.", "Bad"],
    ["5", "bob@example.org", "accepted", "", "Bob"],
]


@pytest.fixture
def crm_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A `people` table with good, duplicate, empty and malformed addresses, on the same kind
    of database as the workspace."""
    if db_url.startswith("sqlite"):
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'crm.db'}"])
    else:
        urls = fresh_schema(request.getfixturevalue("postgres_server"))
    url = next(urls)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER, email TEXT, name TEXT)"))
        conn.execute(
            sa.text("INSERT INTO people VALUES (:i, :e, :n)"),
            [{"i": i, "e": e, "n": n} for i, e, n in PEOPLE],
        )
    engine.dispose()
    yield url
    next(urls, None)  # drops the PostgreSQL schema


def shown(ws: Workspace, audience_id: int) -> list[list[str]]:
    """The audience's download (Saved audiences' CSV) read back: row, email, status, reason,
    name."""
    audience, rows = audience_service.rows_with_status(ws, audience_id)
    text = audience_frame(audience, rows).to_csv(index=False)
    records = list(csv.DictReader(io.StringIO(text)))
    assert list(records[0])[:4] == ["row", "email", "status", "reason"]
    return [[r["row"], r["email"], r["status"], r["reason"], r["name"]] for r in records]


def test_imported_query_keeps_every_row_with_its_status(workspace: Workspace, crm_url: str) -> None:
    """Verify importing a query's rows stores all five (two accepted, a duplicate, two rejected
    with the reason), the report counts them, and the download shows each row's status."""
    result = sources.try_query(crm_url, QUERY, {})
    audience, report = sources.import_query_rows(workspace, result, name="crm", actor=ACTOR)
    assert audience.row_count == 5
    assert (len(report.imported), len(report.rejected), len(report.duplicates)) == (2, 2, 1)
    assert shown(workspace, audience.id) == EXPECTED
    page = audience_service.browse_rows(workspace, audience.id, search="rejected")
    assert [row.number for row in page.rows] == [3, 4]
    assert (page.matching, page.total) == (2, 5)


def test_recurring_audience_stores_every_row_with_its_status(
    workspace: Workspace, crm_url: str
) -> None:
    """Verify a recurring audience made from a saved source stores today's five rows and
    shows them with the same statuses as a one-off import."""
    source = sources.save_source(
        workspace, name="crm", url=crm_url, query=QUERY, values={}, actor=ACTOR
    )
    audience = sources.save_recurring_audience(workspace, source.id, name="daily", actor=ACTOR)
    assert (audience.row_count, audience.sql_source_id) == (5, source.id)
    assert shown(workspace, audience.id) == EXPECTED


def test_query_without_a_usable_address_is_refused(workspace: Workspace, crm_url: str) -> None:
    """Verify a query whose email column holds no address, or that returns no rows, or an
    empty name, is refused saying why, and no audience is stored."""
    no_address = sources.try_query(crm_url, "SELECT name AS email, id FROM people", {})
    with pytest.raises(InputError, match=r"no row would import: column 'email' .*5 of 5 rows"):
        sources.import_query_rows(workspace, no_address, name="names", actor=ACTOR)
    empty = sources.try_query(crm_url, "SELECT email FROM people WHERE id > 99", {})
    with pytest.raises(InputError, match="the query returned no rows"):
        sources.import_query_rows(workspace, empty, name="none", actor=ACTOR)
    good = sources.try_query(crm_url, QUERY, {})
    with pytest.raises(InputError, match="give the audience a name"):
        sources.import_query_rows(workspace, good, name="  ", actor=ACTOR)
    assert audience_service.list_audiences(workspace) == []
