"""Audiences: storing an imported contacts file, reading, browsing, renaming and deleting
audiences, and every stored row with its status (accepted, rejected with the reason, or a
duplicate of an earlier row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audiences, audit
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import RowVerdict, classify_rows
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Audience

#: rows shown per page when browsing an audience
PAGE_SIZE = 50


@dataclass(frozen=True)
class AudienceRow:
    """One stored row: its number in the audience, its status and the file's values."""

    number: int
    verdict: RowVerdict
    values: dict[str, Any]


@dataclass(frozen=True)
class RowPage:
    """One page of an audience's rows matching a search."""

    rows: list[AudienceRow]
    page: int
    pages: int
    matching: int
    total: int


def import_audience(ws: Workspace, parsed: ParsedFile, *, name: str, actor: str) -> Audience:
    """Store a parsed contacts file as an audience (every row of `parsed`)."""
    now = utcnow()
    with ws.db.begin() as conn:
        audience_id = audiences.insert_audience(
            conn,
            name=name,
            source=parsed.source,
            email_column=parsed.email_column,
            columns=parsed.columns,
            headers=parsed.headers,
            rows=parsed.rows,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            action="audience.import",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": name, "rows": len(parsed.rows)},
        )
        return audiences.get_audience(conn, audience_id)


def list_audiences(ws: Workspace) -> list[Audience]:
    """All audiences, by name."""
    with ws.db.connect() as conn:
        return audiences.list_audiences(conn)


def get_audience(ws: Workspace, audience_id: int) -> Audience:
    """One audience, or NotFound."""
    with ws.db.connect() as conn:
        return audiences.get_audience(conn, audience_id)


def audience_rows(ws: Workspace, audience_id: int) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) of every row of an audience, in file order."""
    with ws.db.connect() as conn:
        return list(audiences.iter_rows(conn, audience_id))


def rows_with_status(ws: Workspace, audience_id: int) -> tuple[Audience, list[AudienceRow]]:
    """The audience and every row with its verdict, in file order."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
        stored = list(audiences.iter_rows(conn, audience_id))
    verdicts = classify_rows(
        [values for _, values in stored],
        audience.email_column,
        test_environment=ws.settings.test_environment,
    )
    rows = [
        AudienceRow(number, verdict, values)
        for (number, values), verdict in zip(stored, verdicts, strict=True)
    ]
    return audience, rows


def matches(row: AudienceRow, search: str) -> bool:
    """The search text (case ignored) is in one of the row's values, its status or reason."""
    needle = search.strip().casefold()
    if not needle:
        return True
    texts = [row.verdict.status.value, row.verdict.reason, *map(str, row.values.values())]
    return any(needle in text.casefold() for text in texts)


def browse_rows(
    ws: Workspace, audience_id: int, *, search: str = "", page: int = 1, page_size: int = PAGE_SIZE
) -> RowPage:
    """The rows matching `search`, one page of them (pages from 1; past the end: the last)."""
    _, rows = rows_with_status(ws, audience_id)
    found = [row for row in rows if matches(row, search)]
    pages = max(1, -(-len(found) // page_size))
    page = min(max(page, 1), pages)
    start = (page - 1) * page_size
    return RowPage(found[start : start + page_size], page, pages, len(found), len(rows))


def rename_audience(ws: Workspace, audience_id: int, name: str, *, actor: str) -> Audience:
    """Rename an audience (its workflows follow: they refer to it by id)."""
    now = utcnow()
    with ws.db.begin() as conn:
        old = audiences.get_audience(conn, audience_id)
        audiences.rename_audience(conn, audience_id, name)
        audit.record(
            conn,
            actor=actor,
            action="audience.rename",
            subject=f"audience {audience_id}",
            now=now,
            detail={"from": old.name, "to": name.strip()},
        )
        return audiences.get_audience(conn, audience_id)


def workflows_using(ws: Workspace, audience_id: int) -> list[str]:
    """Names of the workflows sending to the audience (it cannot be deleted while any do)."""
    with ws.db.connect() as conn:
        return audiences.workflows_using(conn, audience_id)


def delete_audience(ws: Workspace, audience_id: int, *, actor: str) -> str:
    """Delete an audience and its rows; returns its name. Refused while a workflow uses it."""
    now = utcnow()
    with ws.db.begin() as conn:
        audience = audiences.get_audience(conn, audience_id)
        audiences.delete_audience(conn, audience_id)
        audit.record(
            conn,
            actor=actor,
            action="audience.delete",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": audience.name, "rows": audience.row_count},
        )
        return audience.name
