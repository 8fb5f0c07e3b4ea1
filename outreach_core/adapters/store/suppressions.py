"""The global suppression list: addresses that are never sent to."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.deliveries import status_is
from outreach_core.adapters.store.tables import deliveries, suppressions
from outreach_core.domain.models import Delivery, Suppression
from outreach_core.domain.states import DeliveryStatus, SkipReason


def add_suppression(
    conn: Connection,
    email_normalized: str,
    *,
    reason: str,
    now: datetime,
    source: str | None = None,
) -> bool:
    """Suppress an address (no-op when it already is); True when it was added.

    `email_normalized` must be the normalised key (`validation.check_syntax(raw).key`), the
    same key deliveries are frozen with, or the list would not match them.
    """
    exists = conn.execute(
        sa.select(suppressions.c.id).where(suppressions.c.email_normalized == email_normalized)
    ).first()
    if exists is not None:
        return False
    conn.execute(
        suppressions.insert().values(
            email_normalized=email_normalized, reason=reason, created_at=now, source=source
        )
    )
    return True


def remove_suppression(conn: Connection, email_normalized: str) -> bool:
    """Take an address off the list; True when it was on it."""
    result = conn.execute(
        suppressions.delete().where(suppressions.c.email_normalized == email_normalized)
    )
    return result.rowcount > 0


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


def list_suppressions(
    conn: Connection, *, search: str = "", limit: int | None = None
) -> list[Suppression]:
    """Newest first; `search` keeps addresses containing it (case-insensitive)."""
    query = sa.select(
        suppressions.c.email_normalized,
        suppressions.c.reason,
        suppressions.c.created_at,
        suppressions.c.source,
    ).order_by(suppressions.c.id.desc())
    if search.strip():
        needle = search.strip().lower().replace("\\", "\\\\").replace("%", r"\%")
        needle = needle.replace("_", r"\_")
        query = query.where(suppressions.c.email_normalized.like(f"%{needle}%", escape="\\"))
    if limit is not None:
        query = query.limit(limit)
    return [Suppression.model_validate(dict(row._mapping)) for row in conn.execute(query)]


def iter_suppressions(conn: Connection) -> Iterator[Suppression]:
    """Every entry, oldest first (for export)."""
    query = sa.select(
        suppressions.c.email_normalized,
        suppressions.c.reason,
        suppressions.c.created_at,
        suppressions.c.source,
    ).order_by(suppressions.c.id)
    for row in conn.execute(query):
        yield Suppression.model_validate(dict(row._mapping))


def count_suppressions(conn: Connection) -> int:
    """How many addresses are suppressed."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar_one())


def skip_suppressed(conn: Connection, batch: list[Delivery], *, now: datetime) -> list[Delivery]:
    """Of a just-claimed batch, the deliveries still allowed to go out.

    The list is checked at freeze time and again here, just before sending, because an address
    may have unsubscribed (or bounced) while the run was waiting or paused. Claimed deliveries
    whose address is now suppressed become `skipped` with reason `suppressed`.
    """
    keys = [d.email_normalized for d in batch if d.email_normalized]
    found = suppressed_among(conn, keys)
    if not found:
        return batch
    for delivery in batch:
        if delivery.email_normalized in found:
            conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id == delivery.id,
                    status_is(DeliveryStatus.SENDING),
                )
                .values(
                    status=DeliveryStatus.SKIPPED,
                    reason=f"{SkipReason.SUPPRESSED}: on the suppression list "
                    f"({found[delivery.email_normalized]})",
                    updated_at=now,
                )
            )
    return [d for d in batch if d.email_normalized not in found]
