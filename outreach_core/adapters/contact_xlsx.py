"""XLSX contacts files read safely: the archive checked before parsing, rows streamed.

An XLSX file is a ZIP archive of XML parts, and deflate packs a run of one character about a
thousand to one: a 99 KB file can hold a 100 MB cell. So, before any XML is parsed, the
archive's directory is checked: the number of parts, the uncompressed size of each part and of
all of them, and each large part's compression ratio. The directory's sizes bind the reader:
`zipfile` never inflates a part past its declared size, and a part whose data disagrees fails
its CRC check (refused as an unreadable file).

Then the row tags of each part are counted on the bytes as they inflate, nothing kept: a part
with more rows than a spreadsheet can hold (1,048,576) is refused as soon as the count passes
it. Only then is the sheet read row by row (openpyxl's read-only mode), and the caller applies
its row cap as rows come, so a sheet above it is refused without parsing the rest. Each row is
checked as it comes too: no wider than `MAX_COLUMNS`, no cell longer than
`MAX_CELL_CHARS`, no row number past the last row a spreadsheet can have.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

from outreach_core.errors import InputError

#: parts in the archive (a workbook has a dozen or so; one part per sheet, image, ...)
MAX_PARTS = 10_000
#: uncompressed size of any one part (a sheet's XML, the shared strings)
MAX_PART_BYTES = 256 * 1024 * 1024
#: uncompressed size of all the parts together
MAX_EXPANDED_BYTES = 1024 * 1024 * 1024
#: uncompressed/compressed size above which a part larger than RATIO_FLOOR_BYTES is a bomb;
#: spreadsheet XML packs 10 to 50 to one (a long text repeated in every row 150), a run of one
#: character about a thousand to one
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024
#: characters in one cell
MAX_CELL_CHARS = 10_000
#: columns read (a row reaching further is refused, even when the far cells are empty)
MAX_COLUMNS = 1_000
#: the last row of a spreadsheet (Excel's limit): a row numbered past it is a forged file
MAX_SHEET_ROW = 1_048_576
#: the values Excel shows for a formula that failed: read as an empty cell
ERROR_VALUES = frozenset(
    ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")
)


def _mb(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:,.0f} KB"
    return f"{size / 1024 / 1024:,.0f} MB"


def _seekable(data: bytes | IO[bytes]) -> IO[bytes]:
    """The workbook as a file read from its start (bytes are wrapped, a file is rewound)."""
    if isinstance(data, bytes | bytearray):
        return io.BytesIO(data)
    data.seek(0)
    return data


def check_archive(data: bytes | IO[bytes], *, source: str) -> None:
    """Refuse an archive whose parts would expand past the limits, before any is inflated."""
    try:
        with zipfile.ZipFile(_seekable(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{source}: not a readable XLSX file: {exc}") from None
    nothing = "nothing was imported; save the sheet as CSV or split it"
    if len(parts) > MAX_PARTS:
        raise InputError(
            f"{source}: the XLSX archive holds {len(parts):,} parts, more than {MAX_PARTS:,}; "
            f"{nothing}"
        )
    total = 0
    for part in parts:
        total += part.file_size
        if part.file_size > MAX_PART_BYTES:
            raise InputError(
                f"{source}: the part {part.filename} expands to {_mb(part.file_size)}, above "
                f"the limit of {_mb(MAX_PART_BYTES)}; {nothing}"
            )
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
            raise InputError(
                f"{source}: the part {part.filename} expands {ratio:,.0f} times "
                f"({_mb(part.compress_size)} to {_mb(part.file_size)}), more than a spreadsheet "
                f"does (at most {MAX_RATIO} times); {nothing}"
            )
    if total > MAX_EXPANDED_BYTES:
        raise InputError(
            f"{source}: the XLSX file expands to {_mb(total)}, above the limit of "
            f"{_mb(MAX_EXPANDED_BYTES)}; {nothing}"
        )


def cell_text(value: object) -> str:
    """A cell's value as the text a contacts file holds (whole numbers without `.0`)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return "" if value in ERROR_VALUES else value.strip()
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta | bool | int | float):
        return str(value)
    return str(value).strip()


def _column_name(index: int) -> str:
    name = ""
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


#: a row's start tag, with or without a namespace prefix (`<row ` or `<x:row>`)
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,32}:)?row[\s/>]")
#: longer than any match: a tag cut by a chunk's end is counted with the next chunk
_CARRY = 64


def count_row_tags(part: IO[bytes], limit: int) -> int:
    """The number of row start tags in an XML part, read in chunks, the count stopped as soon
    as it passes `limit`. Bytes, not XML: it counts far faster than a parser and keeps nothing,
    and an upper bound (a comment holding `<row>` counts) is all it has to be."""
    count, carry = 0, b""
    while count <= limit:
        chunk = part.read(1 << 20)
        window = carry + chunk
        cut = len(window) - _CARRY if chunk else len(window)
        # the tags starting before the cut (a tag holds one `<`: none starts inside another)
        count += len(_ROW_TAG.findall(window)) - len(_ROW_TAG.findall(window, max(cut, 0)))
        carry = window[max(cut, 0) :]
        if not chunk:
            break
    return count


def _check_row_counts(data: bytes | IO[bytes], too_many: Callable[[], InputError]) -> int:
    # openpyxl sizes every sheet when it opens the workbook, and a sheet without its
    # <dimension> is parsed whole to do so, keeping an element per row: no part may hold
    # more rows than a spreadsheet can
    # the largest count is returned: about the rows of the biggest sheet (progress shown)
    largest = 0
    with zipfile.ZipFile(_seekable(data)) as archive:
        for info in archive.infolist():
            with archive.open(info) as part:
                count = count_row_tags(part, MAX_SHEET_ROW)
                if count > MAX_SHEET_ROW:
                    raise too_many()
                largest = max(largest, count)
    return largest


def sheet_rows(
    data: bytes | IO[bytes],
    *,
    source: str,
    sheet: str | None,
    too_many: Callable[[], InputError],
    row_tags: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cell texts without trailing empty cells) for each row, as read.

    The archive is checked first, then the row tags of every part are counted: more than a
    spreadsheet can hold raises `too_many()` before any XML is parsed. The workbook is then
    opened read-only, so rows are parsed only as the caller asks for them, and a caller that
    stops at its cap parses no further. `data` may be a seekable binary file (read from its
    start, never whole). `row_tags` is told the counted row tags of the biggest part (about
    the sheet's rows, for a progress bar) before the first row comes.
    """
    check_archive(data, source=source)
    try:
        counted = _check_row_counts(data, too_many)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # a bad CRC, a damaged part
        raise InputError(f"{source}: not a readable XLSX file: {exc}") from None
    if row_tags is not None:
        row_tags(counted)
    from openpyxl import load_workbook  # imported here: the send path never needs it

    try:
        book = load_workbook(_seekable(data), read_only=True, data_only=True, keep_links=False)
    # a ZIP that is not a workbook: BadZipFile, KeyError for a missing part, or XML errors
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError, SyntaxError) as exc:
        raise InputError(f"{source}: not a readable XLSX file: {exc}") from None
    try:
        names = [ws.title for ws in book.worksheets]
        if sheet is not None and sheet not in names:
            raise InputError(f"{source}: no sheet {sheet!r}; sheets are: {', '.join(names)}")
        if not names:
            raise InputError(f"{source}: the workbook has no sheet")
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        # the declared size may lie: rows are padded to what is really in them, no further
        worksheet.reset_dimensions()
        yield from _rows(worksheet.iter_rows(values_only=True), source)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, SyntaxError) as exc:
        raise InputError(f"{source}: not a readable XLSX file: {exc}") from None
    finally:
        book.close()


def _rows(rows: Iterator[tuple[object, ...]], source: str) -> Iterator[tuple[int, list[str]]]:
    for number, values in enumerate(rows, start=1):
        if number > MAX_SHEET_ROW:
            raise InputError(
                f"{source}: a row numbered past {MAX_SHEET_ROW:,}, the last row a spreadsheet "
                "has; the file is damaged (nothing was imported)"
            )
        if len(values) > MAX_COLUMNS:
            raise InputError(
                f"{source}, row {number}: reaches column {_column_name(len(values))}, more than "
                f"{MAX_COLUMNS:,} columns; delete the columns you do not need (nothing was "
                "imported)"
            )
        texts = [cell_text(v) for v in values]
        for column, text in enumerate(texts, start=1):
            if len(text) > MAX_CELL_CHARS:
                raise InputError(
                    f"{source}, row {number}, column {_column_name(column)}: a cell of "
                    f"{len(text):,} characters, above the limit of {MAX_CELL_CHARS:,}; "
                    "shorten it (nothing was imported)"
                )
        while texts and not texts[-1]:
            texts.pop()
        yield number, texts
