"""The DNS step before a freeze, streamed: the audience's addresses are read chunk by chunk
and only their distinct domains kept, each looked up once (cache first, as the pre-flight's
`check_emails_async` does), so the step holds one entry per domain, never the addresses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from itertools import islice

from outreach_core.adapters.dns import DomainChecker, make_resolver
from outreach_core.adapters.store import audiences, dns_cache
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.domain.validation import check_syntax

#: addresses read, and their new domains looked up, per round
DOMAIN_CHUNK = 2_000


async def audience_domain_verdicts(ws: Workspace, audience_id: int) -> dict[str, DomainResult]:
    """ASCII domain -> DNS verdict for a stored audience's addresses (for `plan_deliveries`,
    which looks a row's domain up as `check_syntax` normalises it)."""
    with ws.db.connect() as conn:
        audience = audiences.get_audience(conn, audience_id)
        emails = (
            str(data.get(audience.email_column) or "")
            for _, data in audiences.iter_rows(conn, audience.id)
        )
        return await domain_verdicts_of(ws, emails)


async def domain_verdicts_of(ws: Workspace, emails: Iterable[str]) -> dict[str, DomainResult]:
    """The verdict of each distinct domain among `emails`, read as they come."""
    settings = ws.settings
    resolver = make_resolver(settings.nameservers, settings.dns_timeout)
    verdicts: dict[str, DomainResult] = {}
    domains = _domains(emails, test_environment=settings.test_environment)
    while chunk := list(islice(domains, DOMAIN_CHUNK)):
        new = sorted({d for d in chunk if d not in verdicts})
        if not new:
            continue
        now = utcnow()
        with ws.db.connect() as conn:
            known = dns_cache.fresh_results(
                conn, new, checked_after=now - timedelta(hours=settings.dns_cache_hours)
            )
        checker = DomainChecker(resolver, concurrency=settings.dns_concurrency, known=known)
        for domain in new:
            checker.submit(domain)
        found = await checker.results()
        learnt = [
            r for d, r in found.items() if d not in known and r.status is not DomainStatus.DNS_ERROR
        ]
        if learnt:
            with ws.db.begin() as conn:
                dns_cache.store_results(conn, learnt, now=now)
        verdicts.update(found)
    return verdicts


def _domains(emails: Iterable[str], *, test_environment: bool) -> Iterator[str]:
    for raw in emails:
        checked = check_syntax(raw, test_environment=test_environment)
        if checked.ok and checked.key:
            yield checked.key.rpartition("@")[2]
