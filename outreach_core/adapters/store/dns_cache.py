"""DNS verdicts per domain, kept for a while so repeated dry runs do not ask again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import dns_cache
from outreach_core.domain.mx import DomainResult, DomainStatus


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
    # An upsert, not delete-then-insert: two runs checking the same domain at once would both
    # find nothing to delete and the second insert would break the primary key.
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    statement = insert(dns_cache)
    statement = statement.on_conflict_do_update(
        index_elements=[dns_cache.c.domain],
        set_={
            name: statement.excluded[name] for name in ("status", "mx_host", "reason", "checked_at")
        },
    )
    for start in range(0, len(rows), 500):
        conn.execute(statement, rows[start : start + 500])
    return len(rows)
