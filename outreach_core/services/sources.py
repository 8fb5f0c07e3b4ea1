"""Use cases of SQL sources: test a query, save a source (URL encrypted), import its rows."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import (
    ImportReport,
    ParsedFile,
    clean_cells,
    detect_email_column,
    sort_rows,
    unique_identifiers,
)
from outreach_core.adapters.sql_runner import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIMEOUT_S,
    PREVIEW_ROWS,
    QueryResult,
    check_read_only,
    masked,
    run_query,
    source_dialect,
)
from outreach_core.adapters.sql_stream import stream_query
from outreach_core.adapters.store import audiences, audit, sql_sources
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Audience
from outreach_core.errors import InputError
from outreach_core.services.audiences import import_audience
from outreach_core.services.source_streams import cleaned_chunks, shape_of


@dataclass(frozen=True)
class SourceSummary:
    """A saved SQL source as shown on the Audiences page (the URL masked)."""

    id: int
    name: str
    display_url: str
    query: str
    parameters: dict[str, str]
    row_cap: int
    timeout_s: float


def parse_parameters(text: str) -> dict[str, str]:
    """`name=value` lines into a dict; a line without `=` is an error naming it."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip().isidentifier():
            raise InputError(f"parameters, line {number}: write name=value (got {line!r})")
        values[name.strip()] = value.strip()
    return values


def has_password(url: str) -> bool:
    """Whether the URL carries a password or a password-like parameter (masking changes it)."""
    return masked(url) != url


def try_query(
    url: str,
    query: str,
    values: dict[str, str],
    *,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    preview_rows: int = PREVIEW_ROWS,
) -> QueryResult:
    """Run a source query read-only now (the "Test query" button, `source test`): the first
    `preview_rows` rows are kept and the others only counted as they stream past (the row
    cap applies), so a test of millions of rows holds a hundred. The result's warnings say
    when the source's database role could write; its `rerun` reads every row (an import)."""
    started = time.perf_counter()
    with stream_query(
        url, query, values=values, run_date=utcnow(), row_cap=row_cap, timeout_s=timeout_s
    ) as stream:
        first: list[dict[str, str]] = []
        for chunk in stream.chunks():
            first += chunk[: preview_rows - len(first)]
        counted = stream.read
    return QueryResult(
        stream.columns,
        first,
        time.perf_counter() - started,
        stream.warnings,
        counted=counted,
        rerun=partial(
            run_query,
            url,
            query,
            values=values,
            run_date=utcnow(),
            row_cap=row_cap,
            timeout_s=timeout_s,
        ),
    )


def save_source(
    ws: Workspace,
    *,
    name: str,
    url: str,
    query: str,
    values: dict[str, str],
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    actor: str,
) -> SourceSummary:
    """Save a source after checking its query; the URL is stored encrypted."""
    if not name.strip():
        raise InputError("give the source a name")
    check_read_only(query, source_dialect(url))
    now = utcnow()
    with ws.db.begin() as conn:
        source_id = sql_sources.upsert_source(
            conn,
            name=name.strip(),
            now=now,
            url_encrypted=ws.encrypt(conn, url),
            display_url=masked(url),
            query=query,
            parameters=values,
            row_cap=row_cap,
            timeout_s=timeout_s,
        )
        audit.record(
            conn,
            actor=actor,
            action="sql_source.save",
            subject=f"sql source {source_id}",
            now=now,
            detail={"name": name, "url": masked(url)},
        )
    return _summary(ws, source_id)


def _summary(ws: Workspace, source_id: int) -> SourceSummary:
    with ws.db.connect() as conn:
        data, _ = sql_sources.get_source(conn, source_id)
    return SourceSummary(
        data["id"],
        data["name"],
        masked(data["display_url"]),  # sources saved before query parameters were masked
        data["query"],
        dict(data["parameters"]),
        data["row_cap"],
        data["timeout_s"],
    )


def list_sources(ws: Workspace) -> list[SourceSummary]:
    """Saved sources by name."""
    with ws.db.connect() as conn:
        ids = [row["id"] for row in sql_sources.list_sources(conn)]
    return [_summary(ws, i) for i in ids]


def run_source(ws: Workspace, source_id: int) -> QueryResult:
    """Run a saved source now, read-only."""
    with ws.db.connect() as conn:
        data, encrypted = sql_sources.get_source(conn, source_id)
    url = crypto.decrypt(ws.fernet, encrypted)
    return run_query(
        url,
        data["query"],
        values=dict(data["parameters"]),
        run_date=utcnow(),
        row_cap=data["row_cap"],
        timeout_s=data["timeout_s"],
    )


def as_parsed_file(result: QueryResult, *, source: str, email_column: str | None) -> ParsedFile:
    """Query rows as a contacts file: columns made into variables, email column detected,
    control characters removed from values as from an imported file (`clean_cells`; the notes
    name each cleaned cell)."""
    columns = unique_identifiers(result.columns)
    rows = [dict(zip(columns, r.values(), strict=True)) for r in result.rows]
    chosen = email_column or detect_email_column(columns)
    if chosen is None or chosen not in columns:
        raise InputError(f"{source}: no email column among {', '.join(result.columns)}; choose one")
    headers = list(result.columns)
    notes = clean_cells(rows, headers=headers, columns=columns, email_column=chosen)
    return ParsedFile(source, columns, chosen, rows, headers, notes=notes)


def import_query_rows(
    ws: Workspace,
    result: QueryResult,
    *,
    name: str,
    email_column: str | None = None,
    actor: str,
) -> tuple[Audience, ImportReport]:
    """Store a query's rows as an audience, as an uploaded file is stored: every row kept, and
    shown with its status (accepted, rejected with the reason, or a duplicate of an earlier
    row); only accepted rows are sent. Refused, with the reason, when no row has a usable
    address (nothing would be sent) or the name is empty."""
    name = name.strip()
    if not name:
        raise InputError("give the audience a name (e.g. 'crm north')")
    if len(result.rows) < result.total and result.rerun is not None:  # a preview's rows
        result = result.rerun()
    parsed = as_parsed_file(result, source="SQL query", email_column=email_column)
    report = sort_rows(parsed, test_environment=ws.settings.test_environment)
    if not report.total:
        raise InputError("the query returned no rows; nothing was imported")
    if not report.imported:
        raise InputError(
            f"no row would import: column {parsed.email_column!r} holds no usable address "
            f"({len(report.rejected)} of {report.total} rows rejected); select the address "
            "column in the query (e.g. SELECT contact_email AS email …)"
        )
    return import_audience(ws, parsed, name=name, actor=actor), report


def save_recurring_audience(
    ws: Workspace, source_id: int, *, name: str, email_column: str | None = None, actor: str
) -> Audience:
    """An audience that is the saved query itself: its rows now are stored for previews and
    dry runs, and every run re-runs the query (with `:last_run_at` and `:run_date`). The rows
    are read and stored chunk by chunk, so saving millions of them holds one chunk."""
    name = name.strip()
    if not name:
        raise InputError("give the recurring audience a name (e.g. 'new sign-ups daily')")
    with ws.db.connect() as conn:
        data, encrypted = sql_sources.get_source(conn, source_id)
    now = utcnow()
    with (
        stream_query(
            crypto.decrypt(ws.fernet, encrypted),
            data["query"],
            values=dict(data["parameters"]),
            run_date=now,
            row_cap=data["row_cap"],
            timeout_s=data["timeout_s"],
        ) as stream,
        ws.db.begin() as conn,
    ):
        shape = shape_of(stream, source=name, email_column=email_column)
        audience_id = audiences.create_audience(
            conn,
            name=name,
            source=f"SQL source {source_id} (re-queried each run)",
            email_column=shape.email_column,
            columns=shape.columns,
            headers=shape.headers,
            now=now,
        )
        stored = 0
        for chunk in cleaned_chunks(stream, shape):
            audiences.append_rows(conn, audience_id, chunk, first_number=stored + 1)
            stored += len(chunk)
        audiences.set_row_count(conn, audience_id, stored)
        audiences.link_sql_source(conn, audience_id, source_id)
        audit.record(
            conn,
            actor=actor,
            action="audience.sql",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": name, "sql_source": source_id},
        )
        return audiences.get_audience(conn, audience_id)
