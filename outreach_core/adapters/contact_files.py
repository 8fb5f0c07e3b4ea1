"""Audiences from files: decoding, delimiter detection, XLSX, column names made into variables,
and the import report (imported, rejected with line and reason, duplicates).

Every data row of a file is accounted for: imported + rejected + duplicate = rows in the file.
Blank lines are not rows. Control characters (NUL and the like; tab and line breaks kept) are
removed from values with a note naming the row and column (`clean_cells`); an email cell
holding one is left as it is, so its row is rejected with the reason (`domain/control_chars`).
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outreach_core.domain.address_cells import RowStatus, classify_rows
from outreach_core.domain.column_layouts import EMAIL_NAMES, detect_email
from outreach_core.domain.control_chars import (
    clean_row,
    has_controls,
    printable,
    removed_note,
    strip_controls,
)
from outreach_core.errors import InputError

#: delimiters detected in CSV files
DELIMITERS = (",", ";", "\t", "|")
#: files above either limit are refused before anything is imported
MAX_ROWS = 1_000_000
MAX_BYTES = 200 * 1024 * 1024
XLSX_MAGIC = b"PK\x03\x04"
#: cells with control characters removed that the notes list one by one; one line counts the rest
MAX_CLEANED_NOTES = 20


@dataclass(frozen=True)
class RejectedRow:
    """A row without a usable email: its data row number, file line, the value and why."""

    row: int
    line: int
    email: str
    reason: str


@dataclass(frozen=True)
class DuplicateRow:
    """A row whose address repeats an earlier row's (the first occurrence wins)."""

    row: int
    line: int
    email: str
    first_row: int


@dataclass(frozen=True)
class ParsedFile:
    """A contacts file read into rows of variables (all values are strings).

    `columns` are identifiers (template variables); `headers` the original names, same order.
    `lines[i]` is the file line (CSV) or sheet row (XLSX) where data row i+1 starts.
    """

    source: str
    columns: list[str]
    email_column: str
    rows: list[dict[str, str]]
    headers: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    """A parsed file sorted into imported rows, rejected rows and duplicates."""

    parsed: ParsedFile
    imported: list[dict[str, str]]
    rejected: list[RejectedRow]
    duplicates: list[DuplicateRow]

    @property
    def total(self) -> int:
        return len(self.parsed.rows)

    def audience_file(self) -> ParsedFile:
        """The same file holding only the imported rows (what an audience stores)."""
        return ParsedFile(
            source=self.parsed.source,
            columns=self.parsed.columns,
            email_column=self.parsed.email_column,
            rows=self.imported,
            headers=self.parsed.headers,
        )


def identifier(name: str) -> str:
    """A column header as a template variable name: `First name` -> `first_name`."""
    ident = re.sub(r"\W+", "_", name.strip()).strip("_").lower()
    if not ident:
        return "column"
    return f"col_{ident}" if ident[0].isdigit() else ident


def unique_identifiers(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for header in headers:
        base = identifier(str(header))
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count + 1}")
    return names


def detect_email_column(columns: list[str]) -> str | None:
    """The column that is the email column by its name (`column_layouts.detect_email`)."""
    return detect_email(columns)


def decode(data: bytes, *, source: str) -> tuple[str, str, list[str]]:
    """(text, encoding, notes): UTF-16 by its BOM, UTF-8 with or without BOM, else Latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16", []
        except UnicodeDecodeError as exc:
            raise InputError(f"{source}: starts like UTF-16 but is not: {exc.reason}") from None
    try:
        return data.decode("utf-8-sig"), "utf-8", []
    except UnicodeDecodeError:
        note = "the file is not UTF-8; it was read as Latin-1 (check accented letters)"
        return data.decode("latin-1"), "latin-1", [note]


def detect_delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most fields (outside quotes)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def choose_email_column(
    source: str,
    headers: list[str],
    columns: list[str],
    wanted: str | None,
    required: bool,
) -> str:
    """The chosen column's variable name; else the one the headers name; "" when none is
    found and `required` is False (the page then proposes one from the values)."""
    if wanted:
        for header, column in zip(headers, columns, strict=True):
            if wanted in (header, column) or identifier(wanted) == column:
                return column
        raise InputError(
            f"{source}: no column {wanted!r}; columns are: {', '.join(h for h in headers)}"
        )
    found = detect_email(headers)
    if found is not None:
        return columns[headers.index(found)]
    if not required:
        return ""
    raise InputError(
        f"{source}: no email column (looked for {' / '.join(EMAIL_NAMES)}, numbered and vCard "
        f"address columns); choose one of: {', '.join(headers)}"
    )


def clean_headers(headers: list[str]) -> tuple[list[str], list[str]]:
    """The header names without control characters, and a note per name cleaned."""
    cleaned, notes = [], []
    for header in headers:
        text, removed = strip_controls(header)
        if removed:
            notes.append(removed_note(0, text, removed))
        cleaned.append(text)
    return cleaned, notes


def clean_cells(
    rows: list[dict[str, Any]],
    *,
    headers: list[str],
    columns: list[str],
    email_column: str,
    check_all: bool = True,
) -> list[str]:
    """Remove control characters from the values of `rows` in place (not the email cell's:
    `sort_rows` and the planning refuse that row); the notes naming each cleaned cell.

    `check_all=False`: the caller knows no value holds one (a CSV text checked as a whole).
    """
    if not check_all:
        return []
    header_of = dict(zip(columns, headers, strict=False))
    notes: list[str] = []
    more = 0
    for index, row in enumerate(rows):
        if not any(isinstance(v, str) and has_controls(v) for v in row.values()):
            continue
        cleaned = clean_row(row, email_column=email_column)
        rows[index] = cleaned.values
        for column, removed in cleaned.removed.items():
            if len(notes) < MAX_CLEANED_NOTES:
                notes.append(removed_note(index + 1, header_of.get(column, column), removed))
            else:
                more += 1
    if more:
        notes.append(f"control characters were also removed from {more:,} more cells")
    return notes


def _check_size(data: bytes, source: str) -> None:
    if len(data) > MAX_BYTES:
        raise InputError(
            f"{source}: {len(data) / 1024 / 1024:.0f} MB is above the limit of "
            f"{MAX_BYTES // 1024 // 1024} MB; nothing was imported"
        )


def _too_many_rows(source: str) -> InputError:
    return InputError(
        f"{source}: more than {MAX_ROWS:,} rows; split the file (nothing was imported)"
    )


def _collect(data: bytes, *, source: str, **options: Any) -> ParsedFile:
    """The whole file as one ParsedFile, read through `ContactStream`."""
    from outreach_core.adapters.contact_stream import ContactStream  # it builds on this module

    stream = ContactStream(io.BytesIO(data), source=source, **options)
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    for chunk in stream.chunks():
        rows += chunk.rows
        lines += chunk.lines
    return ParsedFile(
        source,
        stream.columns,
        stream.email_column,
        rows,
        stream.headers,
        lines,
        stream.encoding,
        stream.delimiter,
        stream.notes,
    )


def parse_csv(
    data: bytes, *, source: str, email_column: str | None = None, required: bool = True
) -> ParsedFile:
    """Parse CSV bytes: encoding and delimiter detected, quoted fields may hold line breaks.

    `required=False`: a file with no email column found gives `email_column == ""` (the
    caller asks the user) instead of an error. Large files: `ContactStream`, in chunks."""
    return _collect(data, source=source, email_column=email_column, required=required, xlsx=False)


def parse_xlsx(
    data: bytes,
    *,
    source: str,
    email_column: str | None = None,
    sheet: str | None = None,
    required: bool = True,
) -> ParsedFile:
    """Parse an XLSX workbook: the first sheet, or the one named.

    The archive is checked before parsing and the rows are read as a stream (`contact_xlsx`):
    the row cap applies while reading, so a sheet above it is refused without parsing the
    rest, and a part holding more rows than a spreadsheet can is refused before parsing.
    """
    return _collect(
        data, source=source, email_column=email_column, sheet=sheet, required=required, xlsx=True
    )


def parse_file(
    data: bytes,
    *,
    source: str,
    email_column: str | None = None,
    sheet: str | None = None,
    required: bool = True,
) -> ParsedFile:
    """CSV or XLSX, told apart by content (an XLSX file is a ZIP archive)."""
    if data.startswith(XLSX_MAGIC) or source.lower().endswith((".xlsx", ".xlsm")):
        return parse_xlsx(
            data, source=source, email_column=email_column, sheet=sheet, required=required
        )
    return parse_csv(data, source=source, email_column=email_column, required=required)


def read_contacts_file(
    path: Path, *, email_column: str | None = None, sheet: str | None = None
) -> ParsedFile:
    """Read a contacts file from disk."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.stat().st_size > MAX_BYTES:
        raise InputError(
            f"{path.name}: above the limit of {MAX_BYTES // 1024 // 1024} MB; nothing was imported"
        )
    return parse_file(path.read_bytes(), source=path.name, email_column=email_column, sheet=sheet)


def sort_rows(parsed: ParsedFile, *, test_environment: bool = False) -> ImportReport:
    """Imported rows, rows rejected for want of a usable email, and duplicates.

    `test_environment` (`OUTREACH_TEST_ENVIRONMENT`) accepts `.test` addresses.
    Duplicates are found on the normalised address (trimmed, IDN domain in ASCII form)
    compared case-insensitively as a whole; the first occurrence wins (`classify_rows`).
    """
    imported: list[dict[str, str]] = []
    rejected: list[RejectedRow] = []
    duplicates: list[DuplicateRow] = []
    lines = parsed.lines or list(range(2, len(parsed.rows) + 2))
    verdicts = classify_rows(parsed.rows, parsed.email_column, test_environment=test_environment)
    for number, (row, line, verdict) in enumerate(
        zip(parsed.rows, lines, verdicts, strict=True), start=1
    ):
        raw = str(row.get(parsed.email_column) or "")
        if verdict.status is RowStatus.REJECTED:
            rejected.append(RejectedRow(number, line, printable(raw).strip(), verdict.reason))
        elif verdict.status is RowStatus.DUPLICATE:
            assert verdict.first_row is not None
            duplicates.append(DuplicateRow(number, line, raw.strip(), verdict.first_row))
        else:
            imported.append(row)
    return ImportReport(parsed, imported, rejected, duplicates)
