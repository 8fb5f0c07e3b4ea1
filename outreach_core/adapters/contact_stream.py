"""A contacts file read as a stream of row chunks: memory bounded by one chunk, whatever the
file's length.

CSV is decoded as it is read from a binary file (the encoding found by one pass over the
bytes, as `contact_files.decode` decides it: UTF-16 by its BOM, UTF-8 with or without BOM,
else Latin-1), its delimiter guessed from the first bytes. XLSX is read row by row
(`contact_xlsx.sheet_rows`: the archive checked first, openpyxl in read-only mode). Headers,
the email column and each row are handled as `contact_files` handles a whole file; the row cap
applies while reading, so a file above it is refused after reading one row more than the cap.
`progress` says how far the reading is (bytes of a CSV, rows of an XLSX).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from outreach_core.adapters import contact_files as files
from outreach_core.adapters.contact_xlsx import MAX_COLUMNS, sheet_rows
from outreach_core.domain.control_chars import clean_row, has_controls, removed_note
from outreach_core.domain.csv_cells import MARK, restore
from outreach_core.errors import InputError

#: rows per chunk: a chunk's dicts cost a few MB at most
CHUNK_ROWS = 5_000
#: bytes read to guess the delimiter and to check the encoding per step
_HEAD_BYTES = 64 * 1024
_BLOCK = 1 << 20


@dataclass(frozen=True)
class ReadProgress:
    """How far a file has been read: bytes (a CSV) and rows; the totals when known (the
    file's size; an XLSX's counted row tags)."""

    rows_read: int
    bytes_read: int = 0
    total_bytes: int | None = None
    total_rows: int | None = None

    @property
    def fraction(self) -> float:
        """Between 0 and 1: bytes read of the size, else rows of the rows counted."""
        if self.total_bytes:
            return min(1.0, self.bytes_read / self.total_bytes)
        if self.total_rows:
            return min(1.0, self.rows_read / self.total_rows)
        return 0.0

    def line(self) -> str:
        """`12,000 rows read (34%)`."""
        return f"{self.rows_read:,} rows read ({self.fraction:.0%})"


@dataclass(frozen=True)
class ContactChunk:
    """Consecutive data rows: `first_row` is the data row number of `rows[0]` (from 1);
    `lines[i]` the file line (CSV) or sheet row (XLSX) where row i starts."""

    first_row: int
    rows: list[dict[str, str]]
    lines: list[int]


def too_many_rows(source: str, cap: int) -> InputError:
    """The error of a file above the row cap (nothing was imported)."""
    return InputError(f"{source}: more than {cap:,} rows; split the file (nothing was imported)")


def file_size(file: IO[bytes]) -> int:
    """The size of a seekable binary file (its position is kept)."""
    here = file.tell()
    size = file.seek(0, io.SEEK_END)
    file.seek(here)
    return size


def sniff_encoding(file: IO[bytes], *, source: str) -> tuple[str, list[str]]:
    """(codec, notes) as `contact_files.decode` decides, by one pass in 1 MB blocks."""
    file.seek(0)
    head = file.read(4)
    file.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec, fallback = "utf-16", None
    else:
        codec, fallback = "utf-8-sig", "latin-1"
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        while block := file.read(_BLOCK):
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if fallback is None:
            raise InputError(f"{source}: starts like UTF-16 but is not: {exc.reason}") from None
        note = "the file is not UTF-8; it was read as Latin-1 (check accented letters)"
        return fallback, [note]
    finally:
        file.seek(0)
    return codec, []


class ContactStream:
    """One contacts file, its header read on opening, its rows read by `chunks()` (once).

    `file` is a seekable binary file (an upload, a file opened `rb`), never read whole.
    `required=False`: no email column found gives `email_column == ""` instead of an error.
    `xlsx`: the kind, when the caller knows it (else an XLSX is told by content or name).
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        source: str,
        email_column: str | None = None,
        sheet: str | None = None,
        required: bool = True,
        max_rows: int | None = None,
        chunk_rows: int = CHUNK_ROWS,
        xlsx: bool | None = None,
    ) -> None:
        self.file, self.source, self.chunk_rows = file, source, chunk_rows
        self.max_rows = files.MAX_ROWS if max_rows is None else max_rows
        self.total_bytes = file_size(file)
        if self.total_bytes > files.MAX_BYTES:
            raise InputError(
                f"{source}: {self.total_bytes / 1024 / 1024:.0f} MB is above the limit of "
                f"{files.MAX_BYTES // 1024 // 1024} MB; nothing was imported"
            )
        file.seek(0)
        magic = file.read(len(files.XLSX_MAGIC))
        file.seek(0)
        by_content = magic == files.XLSX_MAGIC or source.lower().endswith((".xlsx", ".xlsm"))
        self.is_xlsx = by_content if xlsx is None else xlsx
        self.delimiter: str | None = None
        self.notes: list[str] = []
        self._total_rows: int | None = None
        self._rows_read = 0
        self._cleaned = 0
        if self.is_xlsx:
            self.encoding = "xlsx"
            self._records = self._xlsx_records(sheet)
        else:
            self.encoding, self.notes = self._csv_encoding()
            self._records = self._csv_records()
        self.headers, self.columns = self._read_header()
        self.email_column = files.choose_email_column(
            source, self.headers, self.columns, email_column, required
        )
        self._header_of = dict(zip(self.columns, self.headers, strict=True))

    # -- reading -------------------------------------------------------------------------
    def _csv_encoding(self) -> tuple[str, list[str]]:
        codec, notes = sniff_encoding(self.file, source=self.source)
        head = self.file.read(_HEAD_BYTES)
        self.file.seek(0)
        text = codecs.getincrementaldecoder(codec)(errors="replace").decode(head)
        self.delimiter = files.detect_delimiter(text)
        shown = {"utf-8-sig": "utf-8"}.get(codec, codec)
        self._codec = codec
        return shown, notes

    def _csv_records(self) -> Iterator[tuple[int, list[str]]]:
        """(first file line, cells) of each non-blank record, decoded as read."""
        text = io.TextIOWrapper(self.file, encoding=self._codec, newline="")
        try:
            reader = csv.reader(text, delimiter=self.delimiter or ",", skipinitialspace=True)
            line_after = 0
            try:
                for record in reader:
                    start_line, line_after = line_after + 1, reader.line_num
                    if any(cell.strip() for cell in record):  # a blank line is not a row
                        yield start_line, record
            except csv.Error as exc:
                raise InputError(
                    f"{self.source}, line {reader.line_num}: not readable CSV: {exc}"
                ) from None
        finally:
            # the caller's file stays open; a stream dropped before its end may find it closed
            with contextlib.suppress(ValueError):
                text.detach()

    def _xlsx_records(self, sheet: str | None) -> Iterator[tuple[int, list[str]]]:
        def counted(rows: int) -> None:
            self._total_rows = max(rows - 1, 1)  # the header's row is not a data row

        too_many = lambda: too_many_rows(self.source, self.max_rows)  # noqa: E731
        for number, texts in sheet_rows(
            self.file, source=self.source, sheet=sheet, too_many=too_many, row_tags=counted
        ):
            if any(texts):  # a blank row is not a row
                yield number, texts

    def _read_header(self) -> tuple[list[str], list[str]]:
        first = next(self._records, None)
        if first is None:
            what = "the sheet is empty" if self.is_xlsx else "the file is empty"
            raise InputError(f"{self.source}: {what}")
        line, cells = first
        if not self.is_xlsx:
            cells = [restore(cell.strip()) for cell in cells]
        headers, notes = files.clean_headers(cells)
        self.notes += notes
        if not self.is_xlsx and len(headers) > MAX_COLUMNS:
            # every row is padded to the header's width: a wide header multiplies the
            # memory of every short row
            raise InputError(
                f"{self.source}, line {line}: {len(headers):,} columns, more than "
                f"{MAX_COLUMNS:,}; delete the columns you do not need (nothing was imported)"
            )
        return headers, files.unique_identifiers(headers)

    def _row(self, line: int, cells: list[str]) -> dict[str, str]:
        width = len(self.columns)
        if self.is_xlsx:
            cells = cells[:width]
        else:
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                raise InputError(
                    f"{self.source}, line {line}: {len(cells)} fields but the header has "
                    f"{width} (delimiter {self.delimiter!r}); quote values holding it"
                )
            # a file the product wrote has an apostrophe before formula-like cells: undo it
            cells = [restore(cell) if cell.startswith(MARK) else cell for cell in cells]
        values = dict(zip(self.columns, cells + [""] * (width - len(cells)), strict=False))
        # one search over the row: a clean row (nearly all) costs one regex call
        if has_controls("".join(values.values())):
            values = self._cleaned_row(values)
        return values

    def _cleaned_row(self, values: dict[str, str]) -> dict[str, str]:
        cleaned = clean_row(values, email_column=self.email_column)
        for column, removed in cleaned.removed.items():
            self._cleaned += 1
            if self._cleaned <= files.MAX_CLEANED_NOTES:
                header = self._header_of.get(column, column)
                self.notes.append(removed_note(self._rows_read + 1, header, removed))
        return cleaned.values

    def chunks(self) -> Iterator[ContactChunk]:
        """The data rows in chunks of `chunk_rows`; more than `max_rows` raises as the row
        past the cap is read. Notes on cleaned cells are complete once the last chunk came."""
        rows: list[dict[str, str]] = []
        lines: list[int] = []
        first = 1
        for line, cells in self._records:
            if self._rows_read >= self.max_rows:
                raise too_many_rows(self.source, self.max_rows)
            rows.append(self._row(line, cells))
            lines.append(line)
            self._rows_read += 1
            if len(rows) >= self.chunk_rows:
                yield ContactChunk(first, rows, lines)
                first, rows, lines = self._rows_read + 1, [], []
        if rows:
            yield ContactChunk(first, rows, lines)
        more = self._cleaned - files.MAX_CLEANED_NOTES
        if more > 0:
            self.notes.append(f"control characters were also removed from {more:,} more cells")

    @property
    def progress(self) -> ReadProgress:
        """How far `chunks()` has read."""
        if self.is_xlsx:
            return ReadProgress(self._rows_read, total_rows=self._total_rows)
        try:
            done = self.file.tell()
        except (OSError, ValueError):  # closed: read to its end
            done = self.total_bytes
        return ReadProgress(self._rows_read, done, self.total_bytes)
