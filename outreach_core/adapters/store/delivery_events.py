"""Events read back from an engine's mailbox, one row per message, delivery and kind, and the
delivery's `feedback` they lead to (`domain.outcomes` decides which one wins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import deliveries, delivery_events
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.outcomes import FEEDBACK_OF_KIND, stronger_feedbacks


@dataclass(frozen=True)
class DeliveryEvent:
    """What one mailbox message said about one delivery."""

    delivery_id: int
    kind: FeedbackKind
    #: "<engine id>:<uidvalidity>:<uid>" of the mailbox message
    message_key: str
    #: when the message says it was written (else when it was read)
    at: datetime
    engine_id: int | None = None
    email_normalized: str | None = None
    #: a bounce's RFC 3463 status and diagnostic; a reply's subject
    status: str | None = None
    detail: str | None = None
    sender: str | None = None
    #: how the message was tied to the delivery: thread, sender, dsn, arf
    evidence: str | None = None


def record_event(conn: Connection, event: DeliveryEvent, *, now: datetime) -> bool:
    """Store `event` and update its delivery's feedback (and feedback_at) unless a stronger or
    equal one is there. False, changing nothing, when this message already gave this delivery
    this kind of event: a second pass over a mailbox is a no-op. Call inside a transaction."""
    if event.kind is FeedbackKind.OTHER:
        raise ValueError("an OTHER message is about no delivery and is not recorded")
    exists = conn.execute(
        sa.select(delivery_events.c.id).where(
            delivery_events.c.message_key == event.message_key,
            delivery_events.c.delivery_id == event.delivery_id,
            delivery_events.c.kind == event.kind.value,
        )
    ).first()
    if exists is not None:
        return False
    conn.execute(
        delivery_events.insert().values(
            delivery_id=event.delivery_id,
            kind=event.kind.value,
            message_key=event.message_key,
            engine_id=event.engine_id,
            email_normalized=event.email_normalized,
            at=event.at,
            recorded_at=now,
            status=event.status,
            detail=event.detail,
            sender=event.sender,
            evidence=event.evidence,
        )
    )
    feedback = FEEDBACK_OF_KIND[event.kind]
    kept = [value.value for value in stronger_feedbacks(feedback)]
    conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id == event.delivery_id,
            sa.or_(deliveries.c.feedback.is_(None), deliveries.c.feedback.not_in(kept)),
        )
        .values(feedback=feedback.value, feedback_at=event.at)
    )
    return True


def soft_bounce_times(
    conn: Connection, email_normalized: str, *, since: datetime
) -> list[datetime]:
    """When `email_normalized` soft-bounced since `since` (for `soft_bounces_suppress`)."""
    rows = conn.execute(
        sa.select(delivery_events.c.at).where(
            delivery_events.c.email_normalized == email_normalized,
            delivery_events.c.kind == FeedbackKind.SOFT_BOUNCE.value,
            delivery_events.c.at >= since,
        )
    )
    return [row.at for row in rows]
