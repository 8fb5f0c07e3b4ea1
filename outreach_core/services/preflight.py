"""Use cases of the pre-flight: validate a file, dry-run a workflow or any rows with a template.
Nothing is sent.

`dry_run` is the one dry run: what a send of rows with a template, a sender and an unsubscribe
base URL would do with each row. `workflow_preflight` (streamed, `services.streamed_preflight`)
is the one pre-flight of a workflow, with the options its run would use: the Dry run, Send,
Workflows and Home pages and the CLI's `dry-run` all call it, so they show the same counts;
`send --dry-run` of a file calls `dry_run`.

The DNS step asks the nameservers of the settings, each distinct domain once, and keeps its
verdicts in the database for `OUTREACH_DNS_CACHE_HOURS` (`dns_error` is never cached: unknown).
The send path's freeze reads its verdicts the same way (`sending.freeze_domains`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dns.asyncresolver

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.dns import DEFAULT_CONCURRENCY, DomainChecker, make_resolver
from outreach_core.adapters.store import (
    audiences,
    dns_cache,
    suppressions,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_checks import (
    RESULT_COLUMNS,
    PreflightResult,
    Progress,
    check_rows,
    result_records,
    to_csv,
)
from outreach_core.domain.clock import utcnow
from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.domain.planning import (
    PlannedDelivery,
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
)
from outreach_core.domain.preflight_findings import (
    MissingVariable,
    count_statuses,
    missing_variables,
)
from outreach_core.domain.states import DeliveryStatus, SkipReason
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks
from outreach_core.errors import TemplateError
from outreach_core.services import compliance

# the workflow's pre-flight, streamed (memory does not grow with the audience): the pages and
# the CLI reach it here, beside the other pre-flights
from outreach_core.services.streamed_preflight import (
    SAMPLE_ROWS_PER_STATUS as SAMPLE_ROWS_PER_STATUS,
)
from outreach_core.services.streamed_preflight import PreflightSample as PreflightSample
from outreach_core.services.streamed_preflight import WorkflowPreflight as WorkflowPreflight
from outreach_core.services.streamed_preflight import workflow_preflight as workflow_preflight


@dataclass(frozen=True)
class DryRunReport:
    """The pre-flight table: input columns (original names) plus the result columns."""

    source: str
    columns: list[str]
    records: list[dict[str, str]]
    looked_up: int

    def counts(self) -> dict[str, int]:
        """Rows per status, every status listed."""
        return count_statuses(record["status"] for record in self.records).by_status

    @property
    def all_columns(self) -> list[str]:
        return [*self.columns, *RESULT_COLUMNS]

    def csv(self) -> str:
        """UTF-8 CSV text, one line per input row, in input order."""
        return to_csv(self.columns, self.records)


def _cheap_domains(emails: Sequence[str]) -> set[str]:
    return {e.rpartition("@")[2].strip().lower() for e in emails if e and "@" in e}


def check_emails(
    ws: Workspace,
    emails: Sequence[str],
    *,
    skip_mx: bool = False,
    progress: Progress | None = None,
) -> PreflightResult:
    """Syntax, duplicates, flags and (unless `skip_mx`) DNS for each address, cache used."""
    return asyncio.run(check_emails_async(ws, emails, skip_mx=skip_mx, progress=progress))


async def check_addresses(
    emails: Sequence[str],
    *,
    resolver: dns.asyncresolver.Resolver | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    known: dict[str, DomainResult] | None = None,
    progress: Progress | None = None,
    test_environment: bool = False,
) -> PreflightResult:
    """Check every address, looking each distinct domain up through `resolver` while the rows
    are walked; `resolver=None` skips the DNS step (`--skip-mx`). `known` verdicts are not
    looked up again. `test_environment`: `OUTREACH_TEST_ENVIRONMENT` (`check_rows`)."""
    checker = DomainChecker(resolver, concurrency=concurrency, known=known) if resolver else None
    return await check_rows(
        emails, checker=checker, progress=progress, test_environment=test_environment
    )


async def check_emails_async(
    ws: Workspace,
    emails: Sequence[str],
    *,
    skip_mx: bool = False,
    progress: Progress | None = None,
) -> PreflightResult:
    """`check_emails` for callers inside an event loop (the executor)."""
    settings = ws.settings
    if skip_mx:
        return await check_addresses(
            emails, resolver=None, progress=progress, test_environment=settings.test_environment
        )
    now = utcnow()
    with ws.db.connect() as conn:
        known = dns_cache.fresh_results(
            conn,
            _cheap_domains(emails),
            checked_after=now - timedelta(hours=settings.dns_cache_hours),
        )
    resolver = make_resolver(settings.nameservers, settings.dns_timeout)
    result = await check_addresses(
        emails,
        resolver=resolver,
        concurrency=settings.dns_concurrency,
        known=known,
        progress=progress,
        test_environment=settings.test_environment,
    )
    learnt = [
        r
        for domain, r in result.domains.items()
        if domain not in known and r.status is not DomainStatus.DNS_ERROR
    ]
    if learnt:
        with ws.db.begin() as conn:
            dns_cache.store_results(conn, learnt, now=now)
    return result


async def audience_domain_verdicts(ws: Workspace, audience_id: int) -> dict[str, DomainResult]:
    """ASCII domain -> DNS verdict for an audience's addresses (for `plan_deliveries`)."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
        emails = [
            str(data.get(audience.email_column) or "")
            for _, data in audiences.iter_rows(conn, audience.id)
        ]
    return (await check_emails_async(ws, emails)).domains


def validate_file(
    ws: Workspace, parsed: ParsedFile, *, skip_mx: bool = False, progress: Progress | None = None
) -> DryRunReport:
    """The pre-flight of a bare file: every data row, in input order."""
    emails = [str(row.get(parsed.email_column) or "") for row in parsed.rows]
    result = check_emails(ws, emails, skip_mx=skip_mx, progress=progress)
    return report_of(parsed.source, parsed, result)


def report_of(source: str, parsed: ParsedFile, result: PreflightResult) -> DryRunReport:
    headers = parsed.headers or parsed.columns
    rows = [
        {h: row.get(c, "") for h, c in zip(headers, parsed.columns, strict=True)}
        for row in parsed.rows
    ]
    return DryRunReport(source, list(headers), result_records(rows, result.rows), result.looked_up)


def dry_run_audience(
    ws: Workspace, audience_id: int, *, skip_mx: bool = False, progress: Progress | None = None
) -> DryRunReport:
    """The pre-flight of a stored audience (no template: syntax, duplicates, DNS)."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
        rows = [
            {k: "" if v is None else str(v) for k, v in data.items()}
            for _, data in audiences.iter_rows(conn, audience.id)
        ]
    parsed = ParsedFile(
        audience.name, audience.columns, audience.email_column, rows, audience.headers or []
    )
    return validate_file(ws, parsed, skip_mx=skip_mx, progress=progress)


@dataclass(frozen=True)
class DryRun:
    """What a send would do with each row: the planned deliveries (row numbers count the rows
    from 1) and the pre-flight's checks, whose render errors and suppressions come from the
    plan."""

    plan: list[PlannedDelivery]
    checked: PreflightResult


def dry_run(
    ws: Workspace,
    rows: Sequence[Mapping[str, Any]],
    *,
    email_column: str,
    template: CompiledTemplate,
    sender: SenderIdentity,
    unsubscribe_base_url: str | None = None,
    skip_mx: bool = False,
    progress: Progress | None = None,
) -> DryRun:
    """Check and render every row as a send would (DNS unless `skip_mx`, suppressions, the
    template with the sender and, when given, the unsubscribe link); nothing is sent."""
    emails = [str(row.get(email_column) or "") for row in rows]
    result = check_emails(ws, emails, skip_mx=skip_mx, progress=progress)
    plan = list(
        plan_deliveries(
            enumerate(rows, start=1),
            email_column=email_column,
            template=template,
            sender=sender,
            run_date=utcnow(),
            domains=None if skip_mx else result.domains,
            test_environment=ws.settings.test_environment,
            # as the run renders it: a template using `unsubscribe_url` renders when set
            unsubscribe=UnsubscribeLinks(unsubscribe_base_url, compliance.unsubscribe_key(ws))
            if unsubscribe_base_url
            else None,
        )
    )
    with ws.db.connect() as conn:
        pending = [p.key for p in plan if p.status is DeliveryStatus.PENDING and p.key]
        plan = mark_suppressed(plan, suppressions.suppressed_among(conn, pending))
    for row, planned in zip(result.rows, plan, strict=True):
        word = planned.reason_word
        if word in (SkipReason.RENDER_ERROR, SkipReason.SUPPRESSED) and row.skip is None:
            row.skip = SkipReason(word)
            row.reason = (planned.reason or "").split(": ", 1)[-1]
    return DryRun(plan, result)


def workflow_missing_variables(ws: Workspace, workflow_id: int) -> list[MissingVariable]:
    """The variables the workflow's template needs that its audience has no column for (none
    when the template does not compile: its error is shown where it is edited)."""
    with ws.db.connect() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        audience = audiences.get_audience(conn, workflow.audience_id)
        version = templates.current_version(conn, workflow.template_id)
    try:
        template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    except TemplateError:
        return []
    return missing_variables(template, audience.columns)
