"""`validate` of a contacts file in two passes over it, memory bounded whatever its length.

The first pass checks each address's syntax and collects the distinct domains (and counts the
cells holding several addresses); the domains are then looked up (the DNS cache first, as
`preflight.check_emails` does). The second pass reads the file again and writes each row's
outcome to the result CSV as it goes: duplicates are found through an on-disk set of the
addresses seen (`SeenAddresses`), the first occurrence winning as before. The result is the
CSV `preflight.validate_file` writes, row for row.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

from outreach_core.adapters.contact_mapping import ChunkMapping, ImportChoices, several_addresses
from outreach_core.adapters.contact_stream import CHUNK_ROWS, ContactStream
from outreach_core.adapters.dns import DomainChecker, make_resolver
from outreach_core.adapters.seen_addresses import SeenAddresses
from outreach_core.adapters.store import dns_cache
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import SplitMode, is_multi
from outreach_core.domain.address_checks import (
    RESULT_COLUMNS,
    CheckedRow,
    apply_domain,
    syntax_row,
)
from outreach_core.domain.clock import utcnow
from outreach_core.domain.csv_cells import write_csv, write_csv_rows
from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.domain.preflight_findings import PreflightCounts, count_statuses
from outreach_core.domain.states import SkipReason
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import InputError
from outreach_core.services.audience_imports import ProgressCallback


@dataclass(frozen=True)
class FileCheck:
    """How to read the file and what to check."""

    path: Path
    email_column: str | None = None
    sheet: str | None = None
    split: SplitMode = SplitMode.FIRST
    skip_mx: bool = False
    chunk_rows: int = CHUNK_ROWS


@dataclass(frozen=True)
class ValidationSummary:
    """What `validate_to_csv` wrote: the rows, their counts and the file's notes."""

    rows: int
    counts: PreflightCounts
    notes: list[str]
    looked_up: int


def _open(file: IO[bytes], check: FileCheck) -> tuple[ContactStream, ChunkMapping]:
    stream = ContactStream(
        file,
        source=check.path.name,
        email_column=check.email_column,
        sheet=check.sheet,
        chunk_rows=check.chunk_rows,
    )
    mapping = ChunkMapping(
        stream.columns,
        stream.headers,
        ImportChoices(stream.email_column, split=check.split),
        multi=True,
    )
    return stream, mapping


def _first_pass(
    file: IO[bytes], check: FileCheck, test_environment: bool, progress: ProgressCallback | None
) -> tuple[set[str], int, list[str]]:
    """(distinct ASCII domains of the valid addresses, cells holding several, notes)."""
    stream, mapping = _open(file, check)
    domains: set[str] = set()
    multi = 0
    for chunk in stream.chunks():
        for row in chunk.rows:
            cell = str(row.get(mapping.source_email) or "")
            multi += is_multi(cell)
        rows, _ = mapping.apply(chunk.rows, chunk.lines)
        for row in rows:
            checked = check_syntax(
                str(row.get(mapping.email_column) or ""), test_environment=test_environment
            )
            if checked.ok and checked.key is not None:
                domains.add(checked.key.rpartition("@")[2])
        if progress is not None:
            progress(stream.progress)
    notes = list(stream.notes)
    if multi:
        header = stream.headers[stream.columns.index(mapping.source_email)]
        how = "its first address kept" if check.split is SplitMode.FIRST else "one row each"
        notes.append(f"{several_addresses(multi, header)}: {how}")
    return domains, multi, notes


async def _look_up(ws: Workspace, domains: set[str]) -> tuple[dict[str, DomainResult], int]:
    settings = ws.settings
    now = utcnow()
    with ws.db.connect() as conn:
        known = dns_cache.fresh_results(
            conn, domains, checked_after=now - timedelta(hours=settings.dns_cache_hours)
        )
    resolver = make_resolver(settings.nameservers, settings.dns_timeout)
    checker = DomainChecker(resolver, concurrency=settings.dns_concurrency, known=known)
    for domain in sorted(domains):
        checker.submit(domain)
    results = await checker.results()
    learnt = [
        r for d, r in results.items() if d not in known and r.status is not DomainStatus.DNS_ERROR
    ]
    if learnt:
        with ws.db.begin() as conn:
            dns_cache.store_results(conn, learnt, now=now)
    return results, checker.looked_up


def validate_to_csv(
    ws: Workspace,
    check: FileCheck,
    out: Path,
    *,
    progress: ProgressCallback | None = None,
) -> ValidationSummary:
    """Check every data row of the file and write the result CSV (the input columns under the
    file's headers, then the result columns) to `out`, chunk by chunk."""
    if not check.path.is_file():
        raise InputError(f"{check.path} does not exist")
    test_environment = ws.settings.test_environment
    statuses: Counter[str] = Counter()
    with check.path.open("rb") as file:
        domains, multi, notes = _first_pass(file, check, test_environment, progress)
        verdicts: dict[str, DomainResult] = {}
        looked_up = 0
        if not check.skip_mx:
            verdicts, looked_up = asyncio.run(_look_up(ws, domains))
        del domains
        stream, mapping = _open(file, check)
        mapping = ChunkMapping(
            stream.columns,
            stream.headers,
            ImportChoices(stream.email_column, split=check.split),
            multi=bool(multi),
        )
        number = 0
        with SeenAddresses() as seen, out.open("w", encoding="utf-8", newline="") as report:
            report.write(write_csv([*mapping.headers, *RESULT_COLUMNS], []))
            for chunk in stream.chunks():
                rows, _ = mapping.apply(chunk.rows, chunk.lines)
                checked = _check_chunk(rows, mapping, number + 1, seen, test_environment)
                for row in checked:
                    if row.skip is None and not check.skip_mx:
                        apply_domain(row, verdicts, test_environment=test_environment)
                    statuses[row.status] += 1
                report.write(write_csv_rows(_records(rows, checked, mapping)))
                number += len(rows)
                if progress is not None:
                    progress(stream.progress)
    return ValidationSummary(number, count_statuses(statuses.elements()), notes, looked_up)


def _check_chunk(
    rows: list[dict[str, str]],
    mapping: ChunkMapping,
    first: int,
    seen: SeenAddresses,
    test_environment: bool,
) -> list[CheckedRow]:
    """The rows' outcomes by syntax, duplicates marked (the first occurrence in the file
    wins: `seen` holds every earlier address with its row)."""
    checked: list[CheckedRow] = []
    keys: list[str] = []
    valid: list[CheckedRow] = []
    for offset, values in enumerate(rows):
        raw = str(values.get(mapping.email_column) or "")
        address = check_syntax(raw, test_environment=test_environment)
        row = syntax_row(first + offset, raw, address)
        if row.skip is None and address.key is not None:
            keys.append(address.key)
            valid.append(row)
        checked.append(row)
    new = seen.add_many(keys, [row.row_number for row in valid])
    repeated = [key for key, is_new in zip(keys, new, strict=True) if not is_new]
    first_of = seen.first_rows(repeated) if repeated else {}
    for row, key, is_new in zip(valid, keys, new, strict=True):
        if not is_new:
            row.skip = SkipReason.DUPLICATE
            row.reason = f"same address as row {first_of[key]}"
    return checked


def _records(
    rows: list[dict[str, str]], checked: list[CheckedRow], mapping: ChunkMapping
) -> list[list[str]]:
    return [
        [
            *(str(values.get(c, "")) for c in mapping.columns),
            row.email_normalized or "",
            row.status,
            row.reason,
            row.mx_host or "",
            row.suggestion or "",
            row.flags,
        ]
        for values, row in zip(rows, checked, strict=True)
    ]
