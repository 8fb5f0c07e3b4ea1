"""The pre-flight check of a list of addresses: syntax, duplicates, DNS, flags. Sends nothing.

Fast path: while the syntax pass walks the rows, each new domain part is handed to the
DNS checker at once, so lookups run while the remaining rows are still being checked; every
distinct domain is looked up once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from outreach_core.domain.csv_cells import write_csv
from outreach_core.domain.mx import DomainResult, DomainStatus, receives_mail
from outreach_core.domain.states import SkipReason
from outreach_core.domain.validation import (
    CheckedAddress,
    check_syntax,
    is_disposable,
    is_role_account,
    suggest_domain,
)

#: the status of a row the send would attempt; every other row's status is its SkipReason
VALID = "valid"
#: a row's status words in the pre-flight, in the order tables and counts list them: exactly
#: these words appear in tables and CSVs
ROW_STATUSES: tuple[str, ...] = (VALID, *(reason.value for reason in SkipReason))


#: the columns the pre-flight adds to the input's columns in its CSV
RESULT_COLUMNS = ("email_normalized", "status", "reason", "mx_host", "suggestion", "flags")

#: rows checked between two yields to the event loop (lets DNS answers in)
_YIELD_EVERY = 200


@dataclass
class CheckedRow:
    """One row's pre-flight outcome. `row_number` counts data rows from 1; `skip` is why the
    send would not attempt the row (None: valid)."""

    row_number: int
    email: str
    email_normalized: str | None
    skip: SkipReason | None
    reason: str = ""
    mx_host: str | None = None
    suggestion: str | None = None
    role: bool = False
    disposable: bool = False
    #: the domain's mail hosts are not public, and a test environment sends to them anyway
    private_address: bool = False

    @property
    def status(self) -> str:
        """The row's word in tables and CSVs: `valid`, or the skip reason."""
        return VALID if self.skip is None else self.skip.value

    @property
    def flags(self) -> str:
        flags = (
            ("role", self.role),
            ("disposable", self.disposable),
            (DomainStatus.PRIVATE_ADDRESS.value, self.private_address),
        )
        return " ".join(flag for flag, on in flags if on)


@dataclass
class PreflightResult:
    """All rows' outcomes plus what the DNS step learnt (for the cache)."""

    rows: list[CheckedRow]
    domains: dict[str, DomainResult]
    looked_up: int

    def __repr__(self) -> str:
        # Short on purpose: asyncio may repr a finished task's result (Python 3.11's
        # asyncio.run does, on Ctrl-C handler checks), and 100,000 rows cost a second.
        return f"<pre-flight of {len(self.rows)} rows, {self.looked_up} domains looked up>"

    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (0 when none)."""
        found = Counter(row.status for row in self.rows)
        return {status: found.get(status, 0) for status in ROW_STATUSES}


Progress = Callable[[int, int], None]


def _cheap_domain(raw: str) -> str | None:
    """The domain part as typed, when it is plain ASCII: good enough to start a lookup early."""
    domain = raw.rpartition("@")[2].strip().lower()
    return domain if domain and domain.isascii() and "." in domain else None


class DomainLookups(Protocol):
    """Looks domains up while the rows are walked (`adapters.dns.DomainChecker`)."""

    @property
    def looked_up(self) -> int: ...

    def submit(self, domain: str) -> None: ...

    async def results(self) -> dict[str, DomainResult]: ...


async def check_rows(
    emails: Sequence[str],
    *,
    checker: DomainLookups | None,
    progress: Progress | None = None,
    test_environment: bool = False,
) -> PreflightResult:
    """Check every address; `checker=None` skips the DNS step (`--skip-mx`).

    The first occurrence of an address wins; later ones are `duplicate` naming its row.
    `test_environment` accepts `.test` addresses and sends to domains whose mail hosts are
    private (`private_address` then a flag, not a status).
    """
    rows: list[CheckedRow] = []
    first_row_of: dict[str, int] = {}
    total = len(emails)
    for index, raw in enumerate(emails):
        number = index + 1
        raw = raw or ""
        if checker is not None:
            early = _cheap_domain(raw)
            if early:
                checker.submit(early)
        checked = check_syntax(raw, test_environment=test_environment)
        row = syntax_row(number, raw, checked)
        if row.skip is None:
            assert checked.key is not None
            if checked.key in first_row_of:
                row.skip = SkipReason.DUPLICATE
                row.reason = f"same address as row {first_row_of[checked.key]}"
            else:
                first_row_of[checked.key] = number
                if checker is not None:
                    checker.submit(checked.key.rpartition("@")[2])
        rows.append(row)
        if number % _YIELD_EVERY == 0:
            if progress:
                progress(number, total)
            await asyncio.sleep(0)
    domains = await checker.results() if checker else {}
    for row in rows:
        if row.skip is None and checker is not None:
            apply_domain(row, domains, test_environment=test_environment)
    if progress:
        progress(total, total)
    return PreflightResult(rows, domains, checker.looked_up if checker else 0)


def syntax_row(number: int, raw: str, checked: CheckedAddress) -> CheckedRow:
    """Row `number`'s outcome by its address alone: `invalid_syntax`, or valid with its
    flags (duplicates and DNS are the caller's)."""
    if not checked.ok:
        return CheckedRow(number, raw.strip(), None, SkipReason.INVALID_SYNTAX, checked.error or "")
    assert checked.key is not None and checked.address is not None
    domain = checked.key.rpartition("@")[2]
    return CheckedRow(
        number,
        raw.strip(),
        checked.address,
        None,
        suggestion=_suggestion(checked.address, domain),
        role=is_role_account(checked.key),
        disposable=is_disposable(domain),
    )


def apply_domain(
    row: CheckedRow, domains: dict[str, DomainResult], *, test_environment: bool = False
) -> None:
    """A valid row's DNS verdict (its domain's, from `domains`): the mail host, how it was
    reached, and the status when the domain takes no mail."""
    assert row.email_normalized is not None
    result = domains[row.email_normalized.rpartition("@")[2].lower()]
    row.mx_host = result.mx_host
    row.reason = result.reason  # for a valid domain: how it was reached, if not by MX
    if not receives_mail(result.status, test_environment=test_environment):
        row.skip = SkipReason(result.status.value)
    # sent anyway (a test environment): the flag says why it may not arrive
    row.private_address = row.skip is None and result.status is DomainStatus.PRIVATE_ADDRESS


def _suggestion(address: str, domain: str) -> str | None:
    fixed = suggest_domain(domain)
    return f"{address.rpartition('@')[0]}@{fixed}" if fixed else None


def result_records(
    input_rows: Sequence[dict[str, str]], checked: Sequence[CheckedRow]
) -> list[dict[str, str]]:
    """Input columns plus the result columns, one record per row, in input order."""
    return [
        {
            **data,
            "email_normalized": row.email_normalized or "",
            "status": row.status,
            "reason": row.reason,
            "mx_host": row.mx_host or "",
            "suggestion": row.suggestion or "",
            "flags": row.flags,
        }
        for data, row in zip(input_rows, checked, strict=True)
    ]


def to_csv(columns: Sequence[str], records: Sequence[dict[str, str]]) -> str:
    """UTF-8, comma-separated text: the input columns, then the result columns; cells that a
    spreadsheet would run as formulas are neutralised (`csv_cells`)."""
    header = [*columns, *RESULT_COLUMNS]
    return write_csv(header, ([record.get(c, "") for c in header] for record in records))
