"""Audiences: storing an imported contacts file, reading, browsing, renaming and deleting
audiences, and every stored row with its status (accepted, rejected with the reason, or a
duplicate of an earlier row)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.row_verdicts import StreamedVerdicts
from outreach_core.adapters.store import audiences, audit
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import RowStatus, RowVerdict, classify_rows
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Audience
from outreach_core.domain.validation import check_syntax

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


def first_rows(ws: Workspace, audience_id: int, count: int) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) of the first `count` rows, read by the database."""
    with ws.db.connect() as conn:
        return audiences.page_rows(conn, audience_id, offset=0, limit=count)


def find_preview_row(
    ws: Workspace, audience_id: int, email_column: str, *, position: int, email_search: str = ""
) -> tuple[int, dict[str, Any]] | None:
    """The row a preview shows: the first whose address contains `email_search` (case
    aside) when given, else row `position` (from 1); None when none. One row is read."""
    needle = email_search.strip()
    with ws.db.connect() as conn:
        if needle:
            return audiences.first_row_containing(conn, audience_id, email_column, needle)
        if position < 1:
            return None
        found = audiences.page_rows(conn, audience_id, offset=position - 1, limit=1)
    return found[0] if found else None


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


def iter_rows_with_status(ws: Workspace, audience_id: int) -> Iterator[AudienceRow]:
    """Every row with its verdict, in file order, read in chunks: the addresses seen are
    kept on disk (`StreamedVerdicts`), so memory does not grow with the audience."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
        with StreamedVerdicts(
            audience.email_column, test_environment=ws.settings.test_environment
        ) as verdicts:
            for chunk in audiences.iter_rows_chunked(conn, audience_id):
                found = verdicts.classify(chunk[0][0], [values for _, values in chunk])
                for (number, values), verdict in zip(chunk, found, strict=True):
                    yield AudienceRow(number, verdict, values)


def _page_verdicts(
    ws: Workspace, audience: Audience, stored: list[tuple[int, dict[str, Any]]]
) -> list[RowVerdict]:
    """The verdicts of one page of rows: rejected by the address check; a duplicate when an
    earlier row of the audience holds the same address (looked up in the database among the
    rows whose cell matches the page's cells, case and spaces aside)."""
    test_environment = ws.settings.test_environment
    checked = [
        check_syntax(
            str(values.get(audience.email_column) or ""), test_environment=test_environment
        )
        for _, values in stored
    ]
    cells = {str(c.raw).strip().lower() for c in checked if c.ok} | {
        c.key for c in checked if c.ok and c.key
    }
    first_of: dict[str, int] = {}
    if cells:
        with ws.db.connect() as conn:
            earlier = audiences.rows_with_cells(
                conn, audience.id, audience.email_column, sorted(cells), before=stored[-1][0]
            )
        for number, raw in earlier:
            key = check_syntax(raw, test_environment=test_environment).key
            if key is not None and (key not in first_of or number < first_of[key]):
                first_of[key] = number
    verdicts = []
    for (number, _), result in zip(stored, checked, strict=True):
        if not result.ok or result.key is None:
            verdicts.append(RowVerdict(RowStatus.REJECTED, result.error or "invalid"))
            continue
        first = first_of.get(result.key, number)
        if first < number:
            verdicts.append(RowVerdict(RowStatus.DUPLICATE, f"same address as row {first}", first))
        else:
            verdicts.append(RowVerdict(RowStatus.ACCEPTED))
    return verdicts


def browse_rows(
    ws: Workspace, audience_id: int, *, search: str = "", page: int = 1, page_size: int = PAGE_SIZE
) -> RowPage:
    """The rows matching `search`, one page of them (pages from 1; past the end: the last).

    Without a search the page is read by the database (one range of row numbers); a search
    reads the rows in chunks and keeps only the page's."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
    total = audience.row_count
    if not search.strip():
        pages = max(1, -(-total // page_size))
        page = min(max(page, 1), pages)
        with ws.db.connect() as conn:
            stored = audiences.page_rows(
                conn, audience_id, offset=(page - 1) * page_size, limit=page_size
            )
        verdicts = _page_verdicts(ws, audience, stored) if stored else []
        rows = [
            AudienceRow(number, verdict, values)
            for (number, values), verdict in zip(stored, verdicts, strict=True)
        ]
        return RowPage(rows, page, pages, total, total)
    wanted = max(page, 1)
    start = (wanted - 1) * page_size
    matching = 0
    kept: list[AudienceRow] = []
    last: list[AudienceRow] = []  # the latest full page, shown when `page` is past the end
    for row in iter_rows_with_status(ws, audience_id):
        if not matches(row, search):
            continue
        if start <= matching < start + page_size:
            kept.append(row)
        if matching % page_size == 0:
            last = []
        last.append(row)
        matching += 1
    pages = max(1, -(-matching // page_size))
    if wanted > pages:
        return RowPage(last if matching else [], pages, pages, matching, total)
    return RowPage(kept, wanted, pages, matching, total)


def audience_csv(ws: Workspace, audience_id: int) -> bytes:
    """Every row with status and reason as CSV (the page's download), written as the rows
    are read: the CSV's own bytes are all that is held."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "email", "status", "reason", *file_headers(audience)])
    for row in iter_rows_with_status(ws, audience_id):
        writer.writerow(
            [
                row.number,
                str(row.values.get(audience.email_column) or ""),
                row.verdict.status.value,
                row.verdict.reason,
                *(str(row.values.get(c) or "") for c in audience.columns),
            ]
        )
    return out.getvalue().encode("utf-8")


def file_headers(audience: Audience) -> list[str]:
    """The stored columns under the file's own headers, distinct from the leading columns
    (`row`, `email`, `status`, `reason`) and from each other."""
    taken = {"row", "line", "email", "status", "reason"}
    out = []
    for header in audience.headers or audience.columns:
        name = header
        while name.lower() in taken:
            name = f"{name} (file)"
        taken.add(name.lower())
        out.append(name)
    return out


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
