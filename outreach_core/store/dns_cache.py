"""DNS verdicts per domain, kept for a while so repeated dry runs do not ask again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.deliverability import DomainResult, DomainStatus
from outreach_core.store.tables import dns_cache


def fresh_results(
    conn: Connection, domains: Iterable[str], *, checked_after: datetime
) -> dict[str, DomainResult]:
    """Cached verdicts for these domains, checked after `checked_after`."""
    found: dict[str, DomainResult] = {}
    batch = list(domains)
    for start in range(0, len(batch), 500):
        query = sa.select(dns_cache).where(
            dns_cache.c.domain.in_(batch[start : start + 500]),
            dns_cache.c.checked_at > checked_after,
        )
        for row in conn.execute(query).mappings():
            found[row["domain"]] = DomainResult(
                row["domain"], DomainStatus(row["status"]), row["mx_host"], row["reason"]
            )
    return found


def store_results(conn: Connection, results: Iterable[DomainResult], *, now: datetime) -> int:
    """Replace the cached verdicts of these domains; returns how many were written."""
    rows = [
        {
            "domain": r.domain,
            "status": r.status.value,
            "mx_host": r.mx_host,
            "reason": r.reason,
            "checked_at": now,
        }
        for r in results
    ]
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        conn.execute(dns_cache.delete().where(dns_cache.c.domain.in_([r["domain"] for r in chunk])))
        conn.execute(dns_cache.insert(), chunk)
    return len(rows)
