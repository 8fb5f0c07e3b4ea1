"""Rows that wait for DNS, in the batch loop: their domains looked up again before they are
sent, and the pause reason when nothing else is left.

A failed lookup is unknown, never a verdict (`domain/dns_waits.py`): the owner of a run looks
the waiting domains up again at most once per `DNS_RETRY_INTERVAL` (through the DNS cache;
answers are cached, failures never), and settles their rows: sendable, skipped as the answer
says, or waiting on (the run's `on_dns_unanswered` decides once `dns_wait_hours` are over).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from outreach_core.adapters.dns import check_domains, make_resolver
from outreach_core.adapters.store import dns_cache, dns_waits
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.dns_waits import decide, pause_reason, recheck_due
from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.services.sending.context import RunContext

log = logging.getLogger("outreach.executor")


async def look_up_domains(
    ws: Workspace, domains: Collection[str], *, now: datetime
) -> dict[str, DomainResult]:
    """Each domain's verdict: the cached one while fresh, else asked of the nameservers of
    the settings; answers are cached, `dns_error` never (it is unknown)."""
    settings = ws.settings
    with ws.db.connect() as conn:
        known = dns_cache.fresh_results(
            conn, domains, checked_after=now - timedelta(hours=settings.dns_cache_hours)
        )
    missing = [d for d in domains if d not in known]
    if not missing:
        return known
    found = await check_domains(
        make_resolver(settings.nameservers, settings.dns_timeout),
        missing,
        concurrency=settings.dns_concurrency,
    )
    learnt = [r for r in found.values() if r.status is not DomainStatus.DNS_ERROR]
    if learnt:
        with ws.db.begin() as conn:
            dns_cache.store_results(conn, learnt, now=now)
    return {**known, **found}


async def recheck_waiting(ctx: RunContext) -> int:
    """Look the domains of the run's waiting rows up again when due, and settle those rows;
    returns how many rows changed (0 when not due or none waits)."""
    now = ctx.clock()
    if not recheck_due(ctx.dns_checked_at, now):
        return 0
    ctx.dns_checked_at = now
    with ctx.ws.db.connect() as conn:
        rows = dns_waits.waiting_rows(conn, ctx.run.id)
    if not rows:
        return 0
    verdicts = await look_up_domains(ctx.ws, list(rows), now=now)
    options = ctx.run.options
    waited = now - (ctx.run.started_at or ctx.run.created_at)
    decisions = {
        domain: decide(
            verdict,
            policy=options.on_dns_unanswered,
            waited=waited,
            wait_hours=options.dns_wait_hours,
            test_environment=ctx.ws.settings.test_environment,
        )
        for domain, verdict in verdicts.items()
        if domain in rows
    }
    with ctx.ws.db.begin() as conn:
        changed = dns_waits.settle_waiting(conn, decisions, rows, now=ctx.clock())
    log.info(
        "run %s: looked up %d waiting domains again: %s",
        ctx.run.id,
        len(rows),
        ", ".join(f"{d} {decision.action}" for d, decision in sorted(decisions.items())),
    )
    return changed


def waiting_pause_reason(ws: Workspace, run_id: int) -> str | None:
    """`DNS unavailable: …` when rows of the run wait for DNS, else None."""
    with ws.db.connect() as conn:
        rows = dns_waits.waiting_rows(conn, run_id)
    return pause_reason({domain: (len(items), items[0][1]) for domain, items in rows.items()})
