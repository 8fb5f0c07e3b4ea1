"""Cells holding several addresses, and the status of every row of an audience.

Google Contacts writes a contact's addresses into one cell (`a@x.com ::: b@y.org`); other
tools separate them with `;` or `,`. Such a cell is split: the first address kept, or one row
per address (`SplitMode`). Every row then gets a status: accepted, rejected (with the reason)
or a duplicate of an earlier row (the first occurrence wins).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from outreach_core.domain.validation import check_syntax

#: what separates addresses in one cell: Google's ` ::: `, a semicolon or a comma
_SEPARATORS = re.compile(r"\s*(?::::|;|,)\s*")


class SplitMode(StrEnum):
    """What to do with a cell holding several addresses."""

    FIRST = "first"  # keep the row, with the first address
    EACH = "each"  # one row per address, the other values repeated


class RowStatus(StrEnum):
    """A row of an audience: what the import (and every run) makes of it."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class RowVerdict:
    """A row's status and why (empty for an accepted row); `first_row` for a duplicate."""

    status: RowStatus
    reason: str = ""
    first_row: int | None = None


def split_addresses(cell: str) -> list[str]:
    """The addresses of one cell, in order (`a@x.com ::: b@y.org` -> both); one value when
    the cell holds no separator; [] for an empty cell."""
    return [part for part in _SEPARATORS.split(cell.strip()) if part]


def is_multi(cell: str) -> bool:
    """The cell holds more than one address."""
    return len(split_addresses(cell)) > 1


def split_rows(
    rows: Sequence[dict[str, str]],
    *,
    column: str,
    into: str,
    mode: SplitMode,
) -> tuple[list[dict[str, str]], list[int]]:
    """The rows with the address of `column` written to `into` (the cell kept as it was):
    the first address, or (EACH) one row per address. Also returns, for each new row, the
    index of the row it came from."""
    out: list[dict[str, str]] = []
    origin: list[int] = []
    for index, row in enumerate(rows):
        addresses = split_addresses(str(row.get(column) or "")) or [""]
        if mode is SplitMode.FIRST:
            addresses = addresses[:1]
        for address in addresses:
            out.append({**row, into: address})
            origin.append(index)
    return out, origin


def classify_rows(
    rows: Sequence[dict[str, object]], email_column: str, *, test_environment: bool = False
) -> list[RowVerdict]:
    """Each row's verdict: rejected for want of a usable address (the checker's reason), a
    duplicate of an earlier row's address (compared as `check_syntax` keys), else accepted.
    `test_environment` (`OUTREACH_TEST_ENVIRONMENT`) accepts `.test` addresses."""
    verdicts: list[RowVerdict] = []
    first_row_of: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        checked = check_syntax(str(row.get(email_column) or ""), test_environment=test_environment)
        if not checked.ok or checked.key is None:
            verdicts.append(RowVerdict(RowStatus.REJECTED, checked.error or "invalid"))
        elif checked.key in first_row_of:
            first = first_row_of[checked.key]
            verdicts.append(RowVerdict(RowStatus.DUPLICATE, f"same address as row {first}", first))
        else:
            first_row_of[checked.key] = number
            verdicts.append(RowVerdict(RowStatus.ACCEPTED))
    return verdicts
