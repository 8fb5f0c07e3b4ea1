"""A SQL source's rows as audience rows, chunk by chunk: the query's columns made into
template variables, the email column chosen, control characters removed from the values as
from an imported file (`contact_files.clean_cells`, one note per cleaned cell)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from outreach_core.adapters.contact_files import (
    MAX_CLEANED_NOTES,
    detect_email_column,
    unique_identifiers,
)
from outreach_core.adapters.sql_stream import SourceRows
from outreach_core.domain.control_chars import clean_row, has_controls, removed_note
from outreach_core.errors import InputError


@dataclass
class SourceShape:
    """What a source's rows look like as an audience; `notes` grow as rows are cleaned (at
    most MAX_CLEANED_NOTES, then a count)."""

    source: str
    columns: list[str]
    headers: list[str]
    email_column: str
    notes: list[str] = field(default_factory=list)
    more_cleaned: int = 0

    def all_notes(self) -> list[str]:
        more = self.more_cleaned
        tail = [f"control characters were also removed from {more:,} more cells"] if more else []
        return [*self.notes, *tail]


def shape_of(stream: SourceRows, *, source: str, email_column: str | None) -> SourceShape:
    """The audience columns of an open read; an InputError when no column holds the address."""
    columns = unique_identifiers(stream.columns)
    chosen = email_column or detect_email_column(columns)
    if chosen is None or chosen not in columns:
        raise InputError(f"{source}: no email column among {', '.join(stream.columns)}; choose one")
    return SourceShape(source, columns, list(stream.columns), chosen)


def cleaned_chunks(stream: SourceRows, shape: SourceShape) -> Iterator[list[dict[str, Any]]]:
    """The rows of `stream` keyed by `shape.columns`, cleaned, in the chunks they were read."""
    header_of = dict(zip(shape.columns, shape.headers, strict=True))
    number = 0
    for chunk in stream.chunks():
        rows: list[dict[str, Any]] = []
        for row in chunk:
            number += 1
            values: dict[str, Any] = dict(zip(shape.columns, row.values(), strict=True))
            if any(isinstance(v, str) and has_controls(v) for v in values.values()):
                cleaned = clean_row(values, email_column=shape.email_column)
                values = cleaned.values
                for column, removed in cleaned.removed.items():
                    if len(shape.notes) < MAX_CLEANED_NOTES:
                        header = header_of.get(column, column)
                        shape.notes.append(removed_note(number, header, removed))
                    else:
                        shape.more_cleaned += 1
            rows.append(values)
        yield rows


def numbered_rows(stream: SourceRows, shape: SourceShape) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, row) over `cleaned_chunks`."""
    number = 0
    for chunk in cleaned_chunks(stream, shape):
        for row in chunk:
            number += 1
            yield number, row
