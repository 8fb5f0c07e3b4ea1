"""Provider feedback on sent deliveries (bounces, complaints) and the complaint window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import deliveries, engines
from outreach_core.domain.models import Feedback
from outreach_core.domain.states import DeliveryStatus


@dataclass(frozen=True)
class DeliveryRef:
    """The delivery a provider event is about."""

    id: int
    run_id: int
    email_normalized: str | None
    engine_id: int | None


def find_delivery(
    conn: Connection, *, delivery_id: int | None = None, provider_message_id: str | None = None
) -> DeliveryRef | None:
    """The delivery by our id (preferred: it travels in custom_args / v: / EmailTags), else by
    the provider's message id; None when neither matches."""
    columns = (
        deliveries.c.id,
        deliveries.c.run_id,
        deliveries.c.email_normalized,
        deliveries.c.engine_id,
    )
    row = None
    if delivery_id is not None:
        row = conn.execute(sa.select(*columns).where(deliveries.c.id == delivery_id)).first()
    if row is None and provider_message_id:
        row = conn.execute(
            sa.select(*columns)
            .where(deliveries.c.provider_message_id == provider_message_id)
            .order_by(deliveries.c.id.desc())
            .limit(1)
        ).first()
    return None if row is None else DeliveryRef(*row)


def set_feedback(conn: Connection, delivery_id: int, feedback: Feedback, *, now: datetime) -> None:
    """Record what the provider reported; a complaint is never overwritten by a bounce."""
    query = deliveries.update().where(deliveries.c.id == delivery_id)
    if feedback is Feedback.BOUNCED:
        query = query.where(
            sa.or_(deliveries.c.feedback.is_(None), deliveries.c.feedback != Feedback.COMPLAINED)
        )
    conn.execute(query.values(feedback=feedback, feedback_at=now))


def complaint_window(conn: Connection, engine_id: int, *, window: int = 1000) -> tuple[int, int]:
    """(sends, complaints) over the engine's last `window` sent deliveries; complaints that
    arrived before the engine's complaints were marked reviewed do not count."""
    reviewed = conn.execute(
        sa.select(engines.c.complaints_reviewed_at).where(engines.c.id == engine_id)
    ).scalar()
    recent = recent_sends_query(engine_id, window=window).subquery()
    counted = recent.c.feedback == Feedback.COMPLAINED
    if reviewed is not None:
        counted = sa.and_(counted, recent.c.feedback_at > reviewed)
    sends, complaints = conn.execute(
        sa.select(sa.func.count(), sa.func.count().filter(counted)).select_from(recent)
    ).one()
    return int(sends), int(complaints)


def recent_sends_query(engine_id: int, *, window: int) -> sa.Select[Any]:
    """The engine's last `window` sent deliveries (what came back of each), newest first.

    A sent row's updated_at is its sent_at (both the time its outcome was recorded), so they
    are the last `window` entries of the engine's `sent` range of ix_deliveries_engine_status,
    read backwards: ordered by sent_at, every row the engine ever sent was read and sorted, once
    per batch of every run (a million-recipient run slowed to a crawl by its own sends).
    """
    return (
        sa.select(deliveries.c.feedback, deliveries.c.feedback_at)
        .where(deliveries.c.engine_id == engine_id, deliveries.c.status == DeliveryStatus.SENT)
        .order_by(deliveries.c.updated_at.desc())
        .limit(window)
    )


def mark_complaints_reviewed(conn: Connection, engine_id: int, *, now: datetime) -> bool:
    """Complaints so far stop counting toward the brake; True when the engine exists."""
    result = conn.execute(
        engines.update().where(engines.c.id == engine_id).values(complaints_reviewed_at=now)
    )
    return result.rowcount == 1


def engine_names(conn: Connection) -> dict[int, str]:
    """Every engine's id and name."""
    return {int(i): str(n) for i, n in conn.execute(sa.select(engines.c.id, engines.c.name))}
