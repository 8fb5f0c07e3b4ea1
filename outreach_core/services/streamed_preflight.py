"""The pre-flight of a workflow, streamed: its audience read in chunks (a server-side cursor
on PostgreSQL), each chunk checked, rendered and written to the result CSV before the next is
read. Memory holds running counts, the first `SAMPLE_ROWS_PER_STATUS` rows of each status for
the pages, and the distinct domains' DNS verdicts, never a row per recipient: the first row
of each address (the duplicate check) is kept in a temporary SQLite file.

Each row is decided as the run decides it (`preflight_row_checks`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from outreach_core.adapters.csv_files import CsvRowWriter
from outreach_core.adapters.seen_addresses import SeenAddresses
from outreach_core.adapters.store import audiences, engines, templates, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_checks import RESULT_COLUMNS, CheckedRow, Progress
from outreach_core.domain.models import Workflow
from outreach_core.domain.planning import SenderIdentity
from outreach_core.domain.preflight_findings import (
    MissingVariable,
    PreflightCounts,
    count_statuses,
    dedupe_sentence,
    missing_variables,
)
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks
from outreach_core.services import compliance, follow_ups
from outreach_core.services.follow_ups import StepReach
from outreach_core.services.preflight_row_checks import RowChecks

#: rows of each status a page may show (the CSV holds every row)
SAMPLE_ROWS_PER_STATUS = 200
#: audience rows read, checked and written at a time
CHUNK_ROWS = 1000


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
    check = RowChecks(
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
    with SeenAddresses() as seen:
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
