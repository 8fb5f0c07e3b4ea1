"""A contacts file imported as an audience in chunks: memory bounded by one chunk, however many
rows the file holds.

`scan_file` reads the file once for the counts the Audiences page shows before the import
(rows, accepted, rejected, duplicates, cells holding several addresses), duplicates found
through an on-disk set of the addresses seen. `import_file` reads it again and stores it chunk
by chunk in one transaction: a failure part way stores nothing. `iter_rejected` reads it once
more, for the rejected rows' download. Each takes a `progress` callback, told after each chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from outreach_core.adapters.contact_files import DuplicateRow, ParsedFile, RejectedRow
from outreach_core.adapters.contact_mapping import ChunkMapping, ImportChoices, several_addresses
from outreach_core.adapters.contact_stream import CHUNK_ROWS, ContactStream, ReadProgress
from outreach_core.adapters.row_verdicts import StreamedVerdicts
from outreach_core.adapters.store import audiences, audit
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import RowStatus, RowVerdict, SplitMode, is_multi
from outreach_core.domain.clock import utcnow
from outreach_core.domain.control_chars import printable
from outreach_core.domain.models import Audience

#: rejected rows and accepted rows a scan keeps to show (the rest are counted only)
SHOWN_ROWS = 100

ProgressCallback = Callable[[ReadProgress], None]


@dataclass(frozen=True)
class FileOptions:
    """How to read one file: its name, the sheet (XLSX), the user's column choices (None:
    the email column the headers name, nothing renamed, the first address of a cell kept)."""

    source: str
    sheet: str | None = None
    choices: ImportChoices | None = None
    max_rows: int | None = None  # None: contact_files.MAX_ROWS
    chunk_rows: int = CHUNK_ROWS


@dataclass(frozen=True)
class FileScan:
    """What a file would import: its shape after the choices, and every row counted."""

    source: str
    columns: list[str]
    headers: list[str]
    email_column: str
    encoding: str
    delimiter: str | None
    notes: list[str]
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    multi_cells: int
    preview: list[dict[str, str]] = field(default_factory=list)
    first_rejected: list[RejectedRow] = field(default_factory=list)
    #: the values of each row of `first_rejected`, same order
    rejected_values: list[dict[str, str]] = field(default_factory=list)
    first_duplicates: list[DuplicateRow] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    """The stored audience and the scan its counts come from."""

    audience: Audience
    scan: FileScan


def open_stream(file: IO[bytes], options: FileOptions) -> ContactStream:
    """The file opened as a stream: its header read, its email column found."""
    email = options.choices.email if options.choices else None
    return ContactStream(
        file,
        source=options.source,
        email_column=email,
        sheet=options.sheet,
        max_rows=options.max_rows,
        chunk_rows=options.chunk_rows,
    )


def _mapping(stream: ContactStream, options: FileOptions, *, multi: bool) -> ChunkMapping:
    choices = options.choices or ImportChoices(stream.email_column)
    return ChunkMapping(stream.columns, stream.headers, choices, multi=multi)


def _mapped_chunks(
    stream: ContactStream, mapping: ChunkMapping, progress: ProgressCallback | None
) -> Iterator[tuple[int, list[dict[str, str]], list[int], list[str]]]:
    """(first row number, rows, file lines, email cells as the file had them) per chunk,
    after the choices: a cell split into one row per address makes more rows."""
    number = 1
    for chunk in stream.chunks():
        cells = [str(row.get(mapping.source_email) or "") for row in chunk.rows]
        rows, lines = mapping.apply(chunk.rows, chunk.lines)
        yield number, rows, lines, cells
        number += len(rows)
        if progress is not None:
            progress(stream.progress)


def scan_file(
    file: IO[bytes],
    options: FileOptions,
    *,
    test_environment: bool = False,
    progress: ProgressCallback | None = None,
) -> FileScan:
    """Read the whole file once, keeping only counts and the first rows to show."""
    stream = open_stream(file, options)
    # counted as if some cell held several addresses: the rows and verdicts are the same,
    # only the extra column depends on it
    mapping = _mapping(stream, options, multi=True)
    multi = 0
    rows = 0
    preview: list[dict[str, str]] = []
    first_rejected: list[RejectedRow] = []
    rejected_values: list[dict[str, str]] = []
    first_duplicates: list[DuplicateRow] = []
    with StreamedVerdicts(mapping.email_column, test_environment=test_environment) as verdicts:
        for first, chunk, lines, cells in _mapped_chunks(stream, mapping, progress):
            multi += sum(1 for cell in cells if is_multi(cell))
            rows += len(chunk)
            for offset, (row, line, verdict) in enumerate(
                zip(chunk, lines, verdicts.classify(first, chunk), strict=True)
            ):
                if verdict.status is RowStatus.ACCEPTED and len(preview) < SHOWN_ROWS:
                    preview.append(row)
                elif verdict.status is RowStatus.REJECTED and len(first_rejected) < SHOWN_ROWS:
                    first_rejected.append(_rejected(first + offset, line, row, mapping, verdict))
                    rejected_values.append(row)
                elif verdict.status is RowStatus.DUPLICATE and len(first_duplicates) < SHOWN_ROWS:
                    raw = str(row.get(mapping.email_column) or "").strip()
                    assert verdict.first_row is not None
                    first_duplicates.append(
                        DuplicateRow(first + offset, line, raw, verdict.first_row)
                    )
        counts = verdicts.counts
    shape = _mapping(stream, options, multi=bool(multi))
    notes = list(stream.notes)
    if multi:
        how = "its first address kept" if shape.split is SplitMode.FIRST else "one row each"
        header = stream.headers[stream.columns.index(shape.source_email)]
        notes.append(f"{several_addresses(multi, header)}: {how}")
    if not multi:  # the rows shown carry the extra column only when it is kept
        preview = [{k: v for k, v in row.items() if k in shape.columns} for row in preview]
        rejected_values = [
            {k: v for k, v in row.items() if k in shape.columns} for row in rejected_values
        ]
    return FileScan(
        source=options.source,
        columns=shape.columns,
        headers=shape.headers,
        email_column=shape.email_column,
        encoding=stream.encoding,
        delimiter=stream.delimiter,
        notes=notes,
        rows=rows,
        accepted=counts[RowStatus.ACCEPTED],
        rejected=counts[RowStatus.REJECTED],
        duplicates=counts[RowStatus.DUPLICATE],
        multi_cells=multi,
        preview=preview,
        first_rejected=first_rejected,
        rejected_values=rejected_values,
        first_duplicates=first_duplicates,
    )


def _rejected(
    number: int, line: int, row: dict[str, str], mapping: ChunkMapping, verdict: RowVerdict
) -> RejectedRow:
    raw = str(row.get(mapping.email_column) or "")
    return RejectedRow(number, line, printable(raw).strip(), verdict.reason)


def read_head(file: IO[bytes], *, source: str, sheet: str | None, rows: int) -> ParsedFile:
    """The header and the first `rows` data rows (the column pickers' samples); no email
    column found gives `email_column == ""`. The file is read no further."""
    stream = ContactStream(
        file, source=source, sheet=sheet, required=False, chunk_rows=rows, max_rows=None
    )
    chunk = next(stream.chunks(), None)
    return ParsedFile(
        source,
        stream.columns,
        stream.email_column,
        chunk.rows if chunk else [],
        stream.headers,
        chunk.lines if chunk else [],
        stream.encoding,
        stream.delimiter,
        stream.notes,
    )


def iter_rejected(
    file: IO[bytes], options: FileOptions, *, test_environment: bool = False
) -> Iterator[tuple[RejectedRow, dict[str, str]]]:
    """Every rejected row and its values, read from the file as they come (a download)."""
    stream = open_stream(file, options)
    mapping = _mapping(stream, options, multi=True)
    with StreamedVerdicts(mapping.email_column, test_environment=test_environment) as verdicts:
        for first, chunk, lines, _ in _mapped_chunks(stream, mapping, None):
            for offset, (row, line, verdict) in enumerate(
                zip(chunk, lines, verdicts.classify(first, chunk), strict=True)
            ):
                if verdict.status is RowStatus.REJECTED:
                    yield _rejected(first + offset, line, row, mapping, verdict), row


def import_file(
    ws: Workspace,
    file: IO[bytes],
    options: FileOptions,
    *,
    name: str,
    actor: str,
    scan: FileScan | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Store the file as an audience (every row, as `import_audience` does), chunk by chunk
    in one transaction: an error part way (a bad row, the database) stores nothing.

    `scan`: the file's `scan_file` (else it is scanned first: a pass more)."""
    if scan is None:
        scan = scan_file(file, options, test_environment=ws.settings.test_environment)
    stream = open_stream(file, options)
    mapping = _mapping(stream, options, multi=bool(scan.multi_cells))
    now = utcnow()
    stored = 0
    with ws.db.begin() as conn:
        audience_id = audiences.create_audience(
            conn,
            name=name,
            source=options.source,
            email_column=mapping.email_column,
            columns=mapping.columns,
            headers=mapping.headers,
            now=now,
        )
        for first, rows, _, _ in _mapped_chunks(stream, mapping, progress):
            audiences.append_rows(conn, audience_id, rows, first_number=first)
            stored += len(rows)
        audiences.set_row_count(conn, audience_id, stored)
        audit.record(
            conn,
            actor=actor,
            action="audience.import",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": name, "rows": stored},
        )
        audience = audiences.get_audience(conn, audience_id)
    return ImportResult(audience, scan)
