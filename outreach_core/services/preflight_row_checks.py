"""How the streamed pre-flight of a workflow decides its rows, one chunk at a time, as the run
decides them (`domain.planning.plan_deliveries`): syntax, the first occurrence of an address
wins, DNS (unless skipped), the template rendered with the sender and the unsubscribe link,
the suppression list, then the workflow's dedupe window.

Across chunks it keeps the DNS verdicts of the domains met, the render failures an abort
reason names, and the first row of each address in a temporary SQLite file, never a
dictionary of every recipient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outreach_core.adapters.dns import DomainChecker, make_resolver
from outreach_core.adapters.seen_addresses import SeenAddresses
from outreach_core.adapters.store import delivery_claims, dns_cache, suppressions
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_checks import CheckedRow
from outreach_core.domain.clock import utcnow
from outreach_core.domain.dedupe import sent_recently_reason
from outreach_core.domain.models import RenderErrorPolicy, Workflow
from outreach_core.domain.mx import DomainResult, DomainStatus, receives_mail
from outreach_core.domain.planning import RENDER_ABORT_PREFIX, SenderIdentity, render_context
from outreach_core.domain.states import SkipReason
from outreach_core.domain.templating import CompiledTemplate
from outreach_core.domain.validation import (
    check_syntax,
    is_disposable,
    is_role_account,
    suggest_domain,
)
from outreach_core.errors import TemplateError

#: addresses asked of the ledger (dedupe window) or the seen-addresses file at once
_LOOKUP_BATCH = 500
#: failing rows an abort reason names
_ABORT_ROWS_NAMED = 20


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass
class _Pending:
    """A row the run would attempt so far: its outcome, stored values and address key."""

    row: CheckedRow
    data: dict[str, Any]
    key: str


class RowChecks:
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
        self, chunk: list[dict[str, Any]], offset: int, seen: SeenAddresses
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
        seen.add_many(list(firsts), list(firsts.values()))
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
