"""CSV cells a spreadsheet will not run: every CSV the product writes goes through here.

A spreadsheet opening a CSV evaluates a cell that begins with `=`, `+`, `-` or `@` (and, in
some, a tab or a carriage return before one of them) as a formula: `=HYPERLINK(...)` leaks
the sheet to a web address, `=cmd|' /C calc'!A0` runs a program. Contact values come from
whoever filled the contacts file, so such a cell is written with a leading apostrophe, as
OWASP advises: the spreadsheet shows the text, and the apostrophe tells a reader it was added.

Plain numbers (`-5`, `+3.5`, `-1e-3`) are left as they are so a spreadsheet still reads them as
numbers: a plain number cannot hold a formula. The full-width forms of the four signs are
treated as signs too, since some spreadsheets fold them into the ASCII ones on input, and a
cell that begins with spaces before a sign is neutralised as well.

`restore` undoes the apostrophe when a file the product wrote is read back (a suppression
export imported elsewhere, a `validate --out` file sent), so an address like `-ann@example.com`
survives the round trip. `neutralise` is idempotent (a cell already marked is left alone), so a
CSV may pass through it twice; the price is that a value which itself begins with an apostrophe
before a formula sign reads back without that apostrophe.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Sequence

#: the first characters that make a spreadsheet read a cell as a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: the mark put before such a cell
MARK = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _looks_like_formula(text: str) -> bool:
    return text.lstrip(" ").startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text)


def neutralise(value: object) -> str:
    """The cell as text a spreadsheet shows as is: a formula-like start gets an apostrophe.

    `None` is an empty cell, as the csv module writes it.
    """
    text = "" if value is None else str(value)
    return MARK + text if _looks_like_formula(text) else text


def restore(value: str) -> str:
    """The value `neutralise` was given, for a cell read back from a file the product wrote."""
    if value.startswith(MARK) and _looks_like_formula(value[1:]):
        return value[1:]
    return value


def _write_rows(rows: Iterable[Sequence[object]], lineterminator: str) -> str:
    out = io.StringIO()
    minimal = csv.writer(out, lineterminator=lineterminator)
    # the csv module quotes a line break only when it is part of the line terminator: a bare
    # CR in a cell of a "\n" file would split the row in a spreadsheet and start a new line
    # with whatever follows it, so a row holding any line break is written fully quoted
    quoted = csv.writer(out, lineterminator=lineterminator, quoting=csv.QUOTE_ALL)
    for row in rows:
        safe = [neutralise(v) for v in row]
        (quoted if any("\r" in v or "\n" in v for v in safe) else minimal).writerow(safe)
    return out.getvalue()


def write_csv_rows(rows: Iterable[Sequence[object]], *, lineterminator: str = "\n") -> str:
    """CSV text of rows without a header (a file written chunk by chunk), cells neutralised."""
    return _write_rows(rows, lineterminator)


def write_csv(
    header: Sequence[object], rows: Iterable[Sequence[object]], *, lineterminator: str = "\n"
) -> str:
    """CSV text: the header line, then the rows, every cell neutralised."""
    return _write_rows(itertools.chain([header], rows), lineterminator)


def neutralise_csv(text: str, *, lineterminator: str = "\n") -> str:
    """CSV text written by something else (a data frame) with every cell neutralised."""
    return _write_rows(csv.reader(io.StringIO(text, newline="")), lineterminator)
