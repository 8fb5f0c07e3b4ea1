"""The global suppression list: addresses that are never sent to."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.store.tables import suppressions


def add_suppression(conn: Connection, email_normalized: str, *, reason: str, now: datetime) -> None:
    """Suppress an address (no-op when it already is)."""
    exists = conn.execute(
        sa.select(suppressions.c.id).where(suppressions.c.email_normalized == email_normalized)
    ).first()
    if exists is None:
        conn.execute(
            suppressions.insert().values(
                email_normalized=email_normalized, reason=reason, created_at=now
            )
        )


def suppressed_among(conn: Connection, emails: Iterable[str]) -> dict[str, str]:
    """Of the given normalised addresses, those suppressed, with their reason."""
    found: dict[str, str] = {}
    batch = list(emails)
    for start in range(0, len(batch), 500):
        chunk = batch[start : start + 500]
        query = sa.select(suppressions.c.email_normalized, suppressions.c.reason).where(
            suppressions.c.email_normalized.in_(chunk)
        )
        found.update({str(email): str(reason) for email, reason in conn.execute(query)})
    return found
