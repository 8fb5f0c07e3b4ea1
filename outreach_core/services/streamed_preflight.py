"""The pre-flight of a workflow, streamed: its audience read in chunks (a server-side cursor
on PostgreSQL), each chunk checked, rendered and written to the result CSV before the next is
read. Memory holds running counts, the first `SAMPLE_ROWS_PER_STATUS` rows of each status for
the pages, and the distinct domains' DNS verdicts, never a row per recipient: the first row
of each address (the duplicate check) is kept in a temporary SQLite file.

Each row is decided as the run decides it (`domain.planning.plan_deliveries`): syntax, the
first occurrence of an address wins, DNS (unless skipped), the template rendered with the
sender and the unsubscribe link, the suppression list, then the workflow's dedupe window.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TextIO

from outreach_core.adapters.csv_files import CsvRowWriter
from outreach_core.adapters.dns import DomainChecker, make_resolver
from outreach_core.adapters.store import (
    audiences,
    delivery_claims,
    dns_cache,
    engines,
    suppressions,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_checks import RESULT_COLUMNS, CheckedRow, Progress
from outreach_core.domain.clock import utcnow
from outreach_core.domain.dedupe import sent_recently_reason
from outreach_core.domain.models import RenderErrorPolicy, Workflow
from outreach_core.domain.mx import DomainResult, DomainStatus, receives_mail
from outreach_core.domain.planning import RENDER_ABORT_PREFIX, SenderIdentity, render_context
from outreach_core.domain.preflight_findings import (
    MissingVariable,
    PreflightCounts,
    count_statuses,
    dedupe_sentence,
    missing_variables,
)
from outreach_core.domain.states import SkipReason
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks
from outreach_core.domain.validation import (
    check_syntax,
    is_disposable,
    is_role_account,
    suggest_domain,
)
from outreach_core.errors import TemplateError
from outreach_core.services import compliance, follow_ups
from outreach_core.services.follow_ups import StepReach

#: rows of each status a page may show (the CSV holds every row)
SAMPLE_ROWS_PER_STATUS = 200
#: audience rows read, checked and written at a time
CHUNK_ROWS = 1000
#: addresses asked of the ledger (dedupe window) or the seen-addresses file at once
_LOOKUP_BATCH = 500
#: failing rows an abort reason names
_ABORT_ROWS_NAMED = 20


@dataclass(frozen=True)
class PreflightSample:
    """One row as a page shows it: its outcome, and its CSV record (the audience's columns
    under their original names, then the result columns)."""

    row: CheckedRow
    record: dict[str, str]


@dataclass(frozen=True)
class WorkflowPreflight:
    """The pre-flight of a workflow with the options its run would use: DNS (unless the
    workflow skips it), the suppression list, the dedupe window and the template rendered for
    every row. What the pages and the CLI show before a send, and the count they confirm."""

    workflow: Workflow
    #: the audience's column names as its file had them
    columns: list[str]
    counts: PreflightCounts
    #: the first rows of each status (at most `SAMPLE_ROWS_PER_STATUS`), in audience order
    samples: dict[str, list[PreflightSample]]
    #: domains asked of DNS (not from the cache)
    looked_up: int
    #: the options it was made with (the workflow's, unless `skip_mx` was overridden)
    skip_mx: bool
    dedupe_window_hours: float
    #: variables the template needs that the audience has no column for
    missing: list[MissingVariable]
    #: set when the workflow aborts on render errors and some row does not render
    abort_reason: str | None
    #: how many recipients each step reaches (step 1: `to_send`), for a multi-step workflow
    steps: tuple[StepReach, ...] = ()

    @property
    def to_send(self) -> int:
        """Recipients a run would send to now (0 when it would abort)."""
        return 0 if self.abort_reason else self.counts.valid

    @property
    def dedupe_note(self) -> str | None:
        """What the dedupe window will skip, said before the confirmation."""
        return dedupe_sentence(self.counts.sent_recently, self.dedupe_window_hours)

    @property
    def all_columns(self) -> list[str]:
        return [*self.columns, *RESULT_COLUMNS]

    def rows_with(self, status: str) -> list[CheckedRow]:
        """The first rows with this status (e.g. render_error), each with its reason."""
        return [sample.row for sample in self.samples.get(status, [])]

    def sample_records(self) -> list[dict[str, str]]:
        """The sampled rows' CSV records, in audience order."""
        every = [s for shown in self.samples.values() for s in shown]
        return [s.record for s in sorted(every, key=lambda s: s.row.row_number)]


def workflow_preflight(
    ws: Workspace,
    workflow_id: int,
    *,
    skip_mx: bool | None = None,
    progress: Progress | None = None,
    out: TextIO | None = None,
    samples_per_status: int = SAMPLE_ROWS_PER_STATUS,
    statuses: Collection[str] | None = None,
) -> WorkflowPreflight:
    """The one pre-flight of a workflow: its audience rendered with its template and engine,
    checked as its run would check it; with `out`, every row's CSV line is written there (the
    input columns, then the result columns; only rows of `statuses` when given). `skip_mx` None takes the workflow's option;
    nothing is sent. A template that does not compile raises TemplateError."""
    with ws.db.connect() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        audience = audiences.get_audience(conn, workflow.audience_id)
        version = templates.current_version(conn, workflow.template_id)
        engine = engines.get_engine(conn, workflow.engine_id)
    options = workflow.options
    skip = options.skip_mx if skip_mx is None else skip_mx
    template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    base_url = options.unsubscribe_base_url
    check = _RowChecks(
        ws,
        workflow=workflow,
        email_column=audience.email_column,
        template=template,
        sender=SenderIdentity(engine.from_email, engine.from_name),
        unsubscribe=UnsubscribeLinks(base_url, compliance.unsubscribe_key(ws))
        if base_url
        else None,
        skip_mx=skip,
    )
    headers = list(audience.headers or audience.columns)
    tally = _Tally(samples_per_status)
    writer = CsvRowWriter(out) if out is not None else None
    if writer:
        writer.write([*headers, *RESULT_COLUMNS])
    done = 0
    with _SeenAddresses() as seen:
        for chunk in _audience_chunks(ws, audience.id):
            for row, data in asyncio.run(check.chunk(chunk, done, seen)):
                record = _record(headers, audience.columns, data, row)
                tally.add(row, record)
                if writer and (statuses is None or row.status in statuses):
                    writer.write(list(record.values()))
            done += len(chunk)
            if progress:
                progress(done, audience.row_count)
    if progress:
        progress(done, done)
    result = WorkflowPreflight(
        workflow=workflow,
        columns=headers,
        counts=count_statuses(tally.counts.elements()),
        samples=tally.samples,
        looked_up=check.looked_up,
        skip_mx=skip,
        dedupe_window_hours=options.dedupe_window_hours,
        missing=missing_variables(template, audience.columns),
        abort_reason=check.abort_reason(options.on_render_error),
    )
    first = result.to_send
    return replace(result, steps=tuple(follow_ups.step_reach(ws, workflow_id, first=first)))


def _audience_chunks(ws: Workspace, audience_id: int) -> Iterator[list[dict[str, Any]]]:
    """The audience's rows as stored, `CHUNK_ROWS` at a time, read through a cursor that
    fetches as it goes (server-side on PostgreSQL)."""
    with ws.db.connect() as conn:
        streaming = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS)
        chunk: list[dict[str, Any]] = []
        for _, data in audiences.iter_rows(streaming, audience_id):
            chunk.append(data)
            if len(chunk) == CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _record(
    headers: list[str], columns: list[str], data: dict[str, Any], row: CheckedRow
) -> dict[str, str]:
    values = {h: _text(data.get(c)) for h, c in zip(headers, columns, strict=True)}
    return {
        **values,
        "email_normalized": row.email_normalized or "",
        "status": row.status,
        "reason": row.reason,
        "mx_host": row.mx_host or "",
        "suggestion": row.suggestion or "",
        "flags": row.flags,
    }


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass
class _Tally:
    """Running counts per status and the first rows of each."""

    per_status: int
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[PreflightSample]] = field(default_factory=dict)

    def add(self, row: CheckedRow, record: dict[str, str]) -> None:
        status = row.status
        self.counts[status] += 1
        if self.counts[status] <= self.per_status:
            self.samples.setdefault(status, []).append(PreflightSample(row, record))


class _SeenAddresses:
    """The first row of each address seen so far, in a temporary SQLite file (removed when
    closed): the duplicate check without a dictionary of every recipient."""

    def __enter__(self) -> _SeenAddresses:
        self._db = sqlite3.connect("")  # "": a private on-disk temporary database
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, row INTEGER) WITHOUT ROWID")
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def first_rows(self, keys: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(keys), _LOOKUP_BATCH):
            batch = keys[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(batch))
            query = f"SELECT key, row FROM seen WHERE key IN ({marks})"
            found.update(self._db.execute(query, batch).fetchall())
        return found

    def add(self, first_rows: dict[str, int]) -> None:
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", first_rows.items())


@dataclass
class _Pending:
    """A row the run would attempt so far: its outcome, stored values and address key."""

    row: CheckedRow
    data: dict[str, Any]
    key: str


class _RowChecks:
    """Decides the rows of a workflow's pre-flight chunk by chunk, keeping only the DNS
    verdicts of the domains met and the render failures an abort reason names."""

    def __init__(
        self,
        ws: Workspace,
        *,
        workflow: Workflow,
        email_column: str,
        template: CompiledTemplate,
        sender: SenderIdentity,
        unsubscribe: Callable[[str], str] | None,
        skip_mx: bool,
    ) -> None:
        self.ws, self.workflow, self.template, self.sender = ws, workflow, template, sender
        self.email_column = email_column
        self.unsubscribe, self.skip_mx = unsubscribe, skip_mx
        self.test_environment = ws.settings.test_environment
        self.run_date: datetime = utcnow()
        self.domains: dict[str, DomainResult] = {}
        self.looked_up = 0
        self.render_failures = 0
        self.failures_named: list[str] = []

    async def chunk(
        self, chunk: list[dict[str, Any]], offset: int, seen: _SeenAddresses
    ) -> list[tuple[CheckedRow, dict[str, Any]]]:
        """Each row of the chunk with its outcome, in order (row numbers count from 1)."""
        email_column = self.email_column
        rows: list[tuple[CheckedRow, dict[str, Any]]] = []
        pending: list[_Pending] = []
        syntax = [check_syntax(_text(d.get(email_column)), test_environment=self.test_environment)
                  for d in chunk]  # fmt: skip
        earlier = seen.first_rows([c.key for c in syntax if c.ok and c.key])
        firsts: dict[str, int] = {}
        for index, (data, checked) in enumerate(zip(chunk, syntax, strict=True)):
            number, raw = offset + index + 1, _text(data.get(email_column))
            if not checked.ok or checked.key is None or checked.address is None:
                skip = SkipReason.INVALID_SYNTAX
                rows.append(
                    (CheckedRow(number, raw.strip(), None, skip, checked.error or ""), data)
                )
                continue
            domain = checked.key.rpartition("@")[2]
            fixed = suggest_domain(domain)
            row = CheckedRow(
                number,
                raw.strip(),
                checked.address,
                None,
                suggestion=f"{checked.address.rpartition('@')[0]}@{fixed}" if fixed else None,
                role=is_role_account(checked.key),
                disposable=is_disposable(domain),
            )
            rows.append((row, data))
            first = earlier.get(checked.key) or firsts.get(checked.key)
            if first is not None:
                row.skip, row.reason = SkipReason.DUPLICATE, f"same address as row {first}"
            else:
                firsts[checked.key] = number
                pending.append(_Pending(row, data, checked.key))
        seen.add(firsts)
        if not self.skip_mx:
            await self._look_up({p.key.rpartition("@")[2] for p in pending})
        pending = [p for p in pending if self._domain_verdict(p) and self._renders(p)]
        self._mark_suppressed(pending)
        self._mark_sent_recently([p for p in pending if p.row.skip is None])
        return rows

    async def _look_up(self, wanted: set[str]) -> None:
        """The DNS verdicts of domains not met before: the cache first, then the nameservers
        (their answers cached, except `dns_error`: unknown)."""
        wanted -= self.domains.keys()
        if not wanted:
            return
        settings, now = self.ws.settings, utcnow()
        with self.ws.db.connect() as conn:
            known = dns_cache.fresh_results(
                conn, wanted, checked_after=now - timedelta(hours=settings.dns_cache_hours)
            )
        self.domains.update(known)
        asked = wanted - known.keys()
        if not asked:
            return
        resolver = make_resolver(settings.nameservers, settings.dns_timeout)
        checker = DomainChecker(resolver, concurrency=settings.dns_concurrency)
        for domain in sorted(asked):
            checker.submit(domain)
        found = await checker.results()
        self.looked_up += checker.looked_up
        self.domains.update(found)
        learnt = [r for r in found.values() if r.status is not DomainStatus.DNS_ERROR]
        if learnt:
            with self.ws.db.begin() as conn:
                dns_cache.store_results(conn, learnt, now=now)

    def _domain_verdict(self, pending: _Pending) -> bool:
        """Applies the domain's verdict to the row; False when the run would skip it for its
        domain (a `dns_error` row stays: the run keeps it waiting and looks again)."""
        if self.skip_mx:
            return True
        row = pending.row
        result = self.domains[pending.key.rpartition("@")[2]]
        row.mx_host = result.mx_host
        row.reason = result.reason  # for a valid domain: how it was reached, if not by MX
        receives = receives_mail(result.status, test_environment=self.test_environment)
        if not receives:
            row.skip = SkipReason(result.status.value)
        row.private_address = row.skip is None and result.status is DomainStatus.PRIVATE_ADDRESS
        return receives or result.status is DomainStatus.DNS_ERROR

    def _renders(self, pending: _Pending) -> bool:
        row = pending.row
        assert row.email_normalized is not None
        context = render_context(
            pending.data,
            email=row.email_normalized,
            sender=self.sender,
            run_date=self.run_date,
            unsubscribe=self.unsubscribe,
        )
        try:
            self.template.render(context)
        except TemplateError as exc:
            self.render_failures += 1
            if len(self.failures_named) < _ABORT_ROWS_NAMED:
                self.failures_named.append(
                    f"row {row.row_number}: {SkipReason.RENDER_ERROR}: {exc}"
                )
            if row.skip is None:
                row.skip, row.reason = SkipReason.RENDER_ERROR, str(exc)
            return False
        return True

    def _mark_suppressed(self, pending: list[_Pending]) -> None:
        with self.ws.db.connect() as conn:
            suppressed = suppressions.suppressed_among(conn, [p.key for p in pending])
        for p in pending:
            if p.key in suppressed and p.row.skip is None:
                p.row.skip = SkipReason.SUPPRESSED
                p.row.reason = f"on the suppression list ({suppressed[p.key]})"

    def _mark_sent_recently(self, pending: list[_Pending]) -> None:
        """Rows the run's claim would skip: another run of the workflow sent to the address
        within its dedupe window (or is sending it now), as `delivery_claims` decides it."""
        window = self.workflow.options.dedupe_window_hours
        if window <= 0 or not pending:
            return
        by_key = {p.key: p.row for p in pending}
        keys, since = list(by_key), utcnow() - timedelta(hours=window)
        with self.ws.db.connect() as conn:
            for start in range(0, len(keys), _LOOKUP_BATCH):
                taken = delivery_claims.recently_sent(
                    conn,
                    workflow_id=self.workflow.id,
                    run_id=None,
                    keys=keys[start : start + _LOOKUP_BATCH],
                    since=since,
                )
                for key, holder in taken.items():
                    by_key[key].skip = SkipReason.SENT_RECENTLY
                    reason = sent_recently_reason(holder, window_hours=window)
                    by_key[key].reason = reason.split(": ", 1)[-1]

    def abort_reason(self, policy: RenderErrorPolicy) -> str | None:
        """Why a run must send nothing under `abort` (as `planning.render_abort_reason` says
        it), else None."""
        if policy is not RenderErrorPolicy.ABORT or not self.render_failures:
            return None
        more = self.render_failures - len(self.failures_named)
        return (
            f"{RENDER_ABORT_PREFIX}: {self.render_failures} rows do not render, nothing was "
            f"sent: {'; '.join(self.failures_named)}{f'; and {more} more' if more else ''}"
        )
