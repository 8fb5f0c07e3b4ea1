"""Control characters in contact values: which are removed, and when a row is refused instead.

A NUL or another control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) in a
cell is never meant: it comes from a broken export, a binary file read as text, or someone
probing. PostgreSQL refuses NUL in text outright, so such a row would make a run's freeze
fail; the others would reach subjects and bodies as invisible garbage. Tab and line breaks
(CR, LF) are kept in values: a quoted CSV cell may hold a multi-line note on purpose.

In a value the characters are removed and the row gets a note saying how many. In the email
cell nothing is removed: an address holding a control character is not the address someone
typed, so the row is refused with the reason (`email_problem`) rather than mailed at a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: the control characters removed from values: every Cc character but tab, LF and CR
#: (the same set refuses an address; tab and line breaks around one are trimmed like spaces,
#: and inside one the address check refuses them already)
_REMOVED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_controls(text: str) -> bool:
    """Whether the text holds a control character that `strip_controls` removes."""
    return _REMOVED.search(text) is not None


def strip_controls(text: str) -> tuple[str, int]:
    """The text without its control characters (tab, CR and LF kept), and how many went."""
    cleaned, removed = _REMOVED.subn("", text)
    return cleaned, removed


def printable(text: str) -> str:
    """The text without control characters: for an address shown or stored as refused."""
    return _REMOVED.sub("", text)


def email_problem(value: str) -> str | None:
    """Why an address holding control characters is refused; None when it holds none."""
    found = _REMOVED.findall(value)
    if not found:
        return None
    codes = ", ".join(sorted({f"U+{ord(ch):04X}" for ch in found}))
    plural = "s" if len(found) != 1 else ""
    return (
        f"the address holds {len(found)} control character{plural} ({codes}); "
        "correct the email cell"
    )


def removed_note(row: int, column: str, removed: int) -> str:
    """The import note of one cleaned cell: `row 7, column "name": 2 control characters
    removed` (row 0 is the header line)."""
    plural = "s" if removed != 1 else ""
    where = "header" if row == 0 else f"row {row}"
    return f'{where}, column "{printable(column)}": {removed} control character{plural} removed'


@dataclass(frozen=True)
class CleanedRow:
    """A row with control characters removed from its values.

    `removed` maps each column that had some to how many; the email cell is left as it was
    (`email_problem` says why that row is refused).
    """

    values: dict[str, Any]
    removed: dict[str, int] = field(default_factory=dict)


def clean_row(row: Mapping[str, Any], *, email_column: str) -> CleanedRow:
    """Control characters removed from every text value but the email cell's; other values
    (numbers, dates, None from a SQL source) are left as they are."""
    values: dict[str, Any] = {}
    removed: dict[str, int] = {}
    for column, value in row.items():
        if column != email_column and isinstance(value, str):
            value, count = strip_controls(value)
            if count:
                removed[column] = count
        values[column] = value
    return CleanedRow(values, removed)
