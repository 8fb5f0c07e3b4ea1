"""Finding the delivery a mailbox message is about, asking only for what the message names
(its ids, its addresses): an engine's deliveries are never loaded in bulk. Every lookup is kept
to the engine whose mailbox it is, so a message cannot reach another engine's deliveries."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import deliveries
from outreach_core.domain.states import DeliveryStatus

#: a message naming more ids than this is not believed beyond them
_MAX_KEYS = 50


@dataclass(frozen=True)
class SentDelivery:
    """A delivery a mailbox message may be about."""

    id: int
    email_normalized: str | None
    message_id: str | None
    sent_at: datetime | None


_COLUMNS = (
    deliveries.c.id,
    deliveries.c.email_normalized,
    deliveries.c.message_id,
    deliveries.c.sent_at,
)


def _first(conn: Connection, query: sa.Select) -> SentDelivery | None:
    row = conn.execute(query.order_by(deliveries.c.id.desc()).limit(1)).first()
    return None if row is None else SentDelivery(*row)


def by_ids(conn: Connection, engine_id: int, ids: Collection[int]) -> SentDelivery | None:
    """The delivery by our id (X-Outreach-Delivery), if the engine sent it."""
    keys = [i for i in list(ids)[:_MAX_KEYS] if 0 < i < 2**31]  # an INTEGER column
    if not keys:
        return None
    return _first(
        conn,
        sa.select(*_COLUMNS).where(deliveries.c.id.in_(keys), deliveries.c.engine_id == engine_id),
    )


def by_message_ids(
    conn: Connection, engine_id: int, message_ids: Collection[str]
) -> SentDelivery | None:
    """The newest delivery the engine sent with one of these Message-IDs (`<id>` form)."""
    keys = [m for m in list(message_ids)[:_MAX_KEYS] if len(m) <= 300]
    if not keys:
        return None
    return _first(
        conn,
        sa.select(*_COLUMNS).where(
            deliveries.c.message_id.in_(keys), deliveries.c.engine_id == engine_id
        ),
    )


def known_message_ids(conn: Connection, engine_id: int, message_ids: Collection[str]) -> set[str]:
    """Which of `message_ids` the engine sent (the `our_message_ids` classify needs)."""
    keys = [m for m in list(message_ids)[:_MAX_KEYS] if len(m) <= 300]
    if not keys:
        return set()
    rows = conn.execute(
        sa.select(deliveries.c.message_id).where(
            deliveries.c.message_id.in_(keys), deliveries.c.engine_id == engine_id
        )
    )
    return {str(r[0]) for r in rows}


def latest_sent_to(
    conn: Connection, engine_id: int, emails: Collection[str], *, since: datetime | None = None
) -> SentDelivery | None:
    """The newest delivery the engine sent to one of `emails` (normalised keys), sent after
    `since` when given."""
    keys = list(emails)[:_MAX_KEYS]
    if not keys:
        return None
    query = sa.select(*_COLUMNS).where(
        deliveries.c.email_normalized.in_(keys),
        deliveries.c.engine_id == engine_id,
        deliveries.c.status == DeliveryStatus.SENT,
    )
    if since is not None:
        query = query.where(deliveries.c.sent_at >= since)
    return _first(conn, query)
