"""What the Audiences page draws: column pickers with a preview of their values, the rejected
rows with every column of the file, and an audience's rows with their status.

Plain functions (no streamlit): the page reads widgets, calls a service and draws these.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import pandas as pd

from outreach_core.adapters.contact_files import ImportReport, ParsedFile, RejectedRow
from outreach_core.domain.models import Audience
from outreach_core.services.audience_imports import FileScan
from outreach_core.services.audiences import AudienceRow

#: values shown beside a column's name in a picker
PREVIEW_VALUES = 3
PREVIEW_CHARS = 60


def column_preview(parsed: ParsedFile, header: str | None) -> str:
    """`E-mail 1 - Value — ann@x.example, bob@y.example, …`: a header and its first non-empty
    values, as a picker shows it; `(none)` for None."""
    if header is None:
        return "(none)"
    column = parsed.columns[parsed.headers.index(header)]
    values: list[str] = []
    for row in parsed.rows:
        value = str(row.get(column) or "").strip()
        if value:
            values.append(value)
        if len(values) == PREVIEW_VALUES:
            break
    sample = ", ".join(values) or "(empty)"
    if len(sample) > PREVIEW_CHARS:
        sample = sample[: PREVIEW_CHARS - 1] + "…"
    return f"{header} — {sample}"


def samples(parsed: ParsedFile, count: int = 50) -> list[list[str]]:
    """The first rows' values in header order (what content detection looks at)."""
    return [[str(row.get(c) or "") for c in parsed.columns] for row in parsed.rows[:count]]


def _original_values(parsed: ParsedFile, row: dict[str, str]) -> list[str]:
    return [str(row.get(column) or "") for column in parsed.columns]


def rejected_frame(report: ImportReport) -> pd.DataFrame:
    """Rejected rows: row, line, email and reason first, then every column of the file (its
    own headers), so the CSV can be fixed and imported again."""
    parsed = report.parsed
    lines = parsed.lines or list(range(2, len(parsed.rows) + 2))
    records = [
        [
            r.row,
            lines[r.row - 1],
            r.email,
            r.reason,
            *_original_values(parsed, parsed.rows[r.row - 1]),
        ]
        for r in report.rejected
    ]
    return pd.DataFrame(
        records, columns=["row", "line", "email", "reason", *_file_headers(parsed.headers)]
    )


def _file_headers(headers: Sequence[str]) -> list[str]:
    """The file's headers, made distinct from the leading columns and from each other."""
    taken = {"row", "line", "email", "status", "reason"}
    out = []
    for header in headers:
        name = header
        while name.lower() in taken:
            name = f"{name} (file)"
        taken.add(name.lower())
        out.append(name)
    return out


def audience_frame(audience: Audience, rows: Sequence[AudienceRow]) -> pd.DataFrame:
    """An audience's rows: row, email, status and reason first, then every stored column
    under the file's own header."""
    headers = audience.headers or audience.columns
    records = [
        [
            row.number,
            str(row.values.get(audience.email_column) or ""),
            row.verdict.status.value,
            row.verdict.reason,
            *(str(row.values.get(c) or "") for c in audience.columns),
        ]
        for row in rows
    ]
    return pd.DataFrame(
        records, columns=["row", "email", "status", "reason", *_file_headers(headers)]
    )


def scan_rejected_frame(scan: FileScan) -> pd.DataFrame:
    """The first rejected rows a scan kept: row, line, email and reason, then every column of
    the file under its own header."""
    return _rejected_frame(scan, zip(scan.first_rejected, scan.rejected_values, strict=True))


def _rejected_frame(
    scan: FileScan, rows: Iterable[tuple[RejectedRow, dict[str, str]]]
) -> pd.DataFrame:
    records = [
        [r.row, r.line, r.email, r.reason, *(str(v.get(c) or "") for c in scan.columns)]
        for r, v in rows
    ]
    return pd.DataFrame(
        records, columns=["row", "line", "email", "reason", *_file_headers(scan.headers)]
    )


def rejected_csv(scan: FileScan, rows: Iterable[tuple[RejectedRow, dict[str, str]]]) -> str:
    """Every rejected row as CSV text, written as `rows` come (a download made on click)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "line", "email", "reason", *_file_headers(scan.headers)])
    for r, values in rows:
        writer.writerow(
            [r.row, r.line, r.email, r.reason, *(str(values.get(c) or "") for c in scan.columns)]
        )
    return out.getvalue()


def duplicates_frame(scan: FileScan) -> pd.DataFrame:
    """The first duplicates a scan kept."""
    return pd.DataFrame(
        [(d.row, d.line, d.email, d.first_row) for d in scan.first_duplicates],
        columns=["row", "line", "email", "same as row"],
    )
