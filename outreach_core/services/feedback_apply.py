"""What one message of an engine's mailbox does to the ledger: find the delivery it is about,
record the event (`delivery_events.record_event`, which also moves the delivery's feedback),
and suppress where the verdict says so. One call runs inside the caller's transaction.

- hard bounce: the address is suppressed (reason `bounced`), status and diagnostic recorded;
- soft bounce: recorded; suppressed (reason `bounced`) once `soft_bounces_suppress` says the
  address has bounced softly often enough (settings: OUTREACH_SOFT_BOUNCE_LIMIT / _DAYS);
- complaint: the delivery's feedback becomes `complained`, which the complaint brake counts,
  and the address is suppressed (reason `complained`), as a provider's webhook does;
- auto reply, reply: recorded on the delivery, with who wrote and when.

Finding the delivery, every lookup kept to the mailbox's engine: a bounce or complaint by the
returned original's X-Outreach-Delivery, then its Message-ID, then the newest delivery to its
Final-/Original-Recipient; a reply by In-Reply-To/References, then by its From among the
engine's recipients of the reply window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import audit, feedback_lookup, suppressions
from outreach_core.adapters.store.delivery_events import (
    DeliveryEvent,
    record_event,
    soft_bounce_times,
)
from outreach_core.adapters.store.feedback_lookup import SentDelivery
from outreach_core.domain.feedback_rules import FeedbackKind, soft_bounces_suppress
from outreach_core.domain.mailbox_feedback import Feedback, classify
from outreach_core.domain.models import SuppressionReason
from outreach_core.domain.validation import check_syntax

log = logging.getLogger("outreach.feedback")

#: a message dated this far ahead of the reader's clock is not believed about its time
_CLOCK_SKEW = timedelta(hours=1)
#: characters of a diagnostic or subject kept on the event
MAX_DETAIL = 2000


def _text(value: str | None, limit: int) -> str | None:
    """`value` as a column takes it: no NUL (PostgreSQL refuses one in text; anyone can put one
    in a subject), at most `limit` characters, None when empty."""
    if not value:
        return None
    return value.replace("\x00", "")[:limit] or None


@dataclass(frozen=True)
class Applied:
    """What one message was and what it did: the delivery it landed on (None: none found, or
    a kind that names none), whether it was new, and the address it suppressed."""

    kind: FeedbackKind
    delivery_id: int | None = None
    recorded: bool = False
    suppressed: str | None = None


def _key(address: str | None) -> str | None:
    if not address:
        return None
    checked = check_syntax(address)
    return checked.key if checked.ok else None


def classify_for_engine(
    conn: Connection, engine_id: int, raw: bytes, *, now: datetime, reply_window: timedelta
) -> Feedback:
    """`classify` with our Message-IDs and recipients asked of the store for just what the
    message names: its threading ids, and its From within the reply window."""
    probe = classify(raw)
    ours = feedback_lookup.known_message_ids(conn, engine_id, probe.thread_ids)
    recipients: set[str] = set()
    key = _key(probe.sender)
    if key and feedback_lookup.latest_sent_to(conn, engine_id, [key], since=now - reply_window):
        recipients.add(probe.sender or "")
    if not ours and not recipients:
        return probe
    return classify(raw, our_message_ids=ours, recipients=recipients)


def find_delivery(
    conn: Connection,
    engine_id: int,
    feedback: Feedback,
    *,
    now: datetime,
    reply_window: timedelta,
) -> tuple[SentDelivery | None, str]:
    """The delivery `feedback` is about, and the evidence that tied it (dsn, arf, thread,
    sender)."""
    if feedback.kind in (FeedbackKind.REPLY, FeedbackKind.AUTO_REPLY):
        found = feedback_lookup.by_message_ids(conn, engine_id, feedback.thread_ids)
        if found is not None:
            return found, "thread"
        key = _key(feedback.sender)
        keys = [key] if key else []
        since = now - reply_window
        return feedback_lookup.latest_sent_to(conn, engine_id, keys, since=since), "sender"
    evidence = "arf" if feedback.kind is FeedbackKind.COMPLAINT else "dsn"
    found = feedback_lookup.by_ids(conn, engine_id, feedback.delivery_ids)
    if found is None:
        found = feedback_lookup.by_message_ids(conn, engine_id, feedback.original_message_ids)
    if found is None:
        keys = [k for k in (_key(a) for a in feedback.recipients) if k]
        found = feedback_lookup.latest_sent_to(conn, engine_id, keys)
    return found, evidence


def _event_time(feedback: Feedback, delivery: SentDelivery, now: datetime) -> datetime:
    """The message's Date when it is believable (after the send, not in the future), else the
    time it was read."""
    date = feedback.date
    if date is None or date > now + _CLOCK_SKEW:
        return now
    if delivery.sent_at is not None and date < delivery.sent_at - _CLOCK_SKEW:
        return now
    return min(date, now)


def apply_feedback(
    conn: Connection,
    feedback: Feedback,
    *,
    engine_id: int,
    engine_name: str,
    message_key: str,
    settings: Settings,
    now: datetime,
) -> Applied:
    """Record what `feedback` says on its delivery (see the module docstring)."""
    if feedback.kind is FeedbackKind.OTHER:
        return Applied(feedback.kind)
    window = timedelta(days=settings.feedback_reply_window_days)
    delivery, evidence = find_delivery(conn, engine_id, feedback, now=now, reply_window=window)
    if delivery is None:
        log.info("event=feedback.unmatched kind=%s message=%s", feedback.kind, message_key)
        return Applied(feedback.kind)
    # a complaint counts for the brake from when it was read: one dated before the engine's
    # complaints were last reviewed but read after would otherwise never count
    at = now if feedback.kind is FeedbackKind.COMPLAINT else _event_time(feedback, delivery, now)
    bounce = feedback.kind in (FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE)
    event = DeliveryEvent(
        delivery_id=delivery.id,
        kind=feedback.kind,
        message_key=message_key,
        at=at,
        engine_id=engine_id,
        email_normalized=delivery.email_normalized,
        status=_text(feedback.status, 20) if bounce else None,
        detail=_text(feedback.diagnostic if bounce else feedback.subject, MAX_DETAIL),
        sender=_text(feedback.sender, 320),
        evidence=evidence,
    )
    recorded = record_event(conn, event, now=now)
    suppressed = None
    if recorded:
        suppressed = _suppress(conn, feedback, delivery, settings=settings, now=now)
        audit.record(
            conn,
            actor=f"mailbox {engine_name}"[:200],
            action=f"feedback.{feedback.kind}",
            subject=delivery.email_normalized or f"delivery {delivery.id}",
            now=now,
            detail={"delivery_id": delivery.id, "message": message_key, "status": event.status},
        )
    return Applied(feedback.kind, delivery.id, recorded, suppressed)


def _suppress(
    conn: Connection,
    feedback: Feedback,
    delivery: SentDelivery,
    *,
    settings: Settings,
    now: datetime,
) -> str | None:
    """Suppress the delivery's address when the verdict calls for it; the address, or None."""
    address = delivery.email_normalized
    if not address or not may_suppress(feedback.kind):
        return None
    if feedback.kind is FeedbackKind.SOFT_BOUNCE:
        since = now - timedelta(days=settings.soft_bounce_days)
        times = soft_bounce_times(conn, address, since=since)
        if not soft_bounces_suppress(
            times, now, limit=settings.soft_bounce_limit, days=settings.soft_bounce_days
        ):
            return None
    reason = (
        SuppressionReason.COMPLAINED
        if feedback.kind is FeedbackKind.COMPLAINT
        else SuppressionReason.BOUNCED
    )
    suppressions.add_suppression(conn, address, reason=reason, now=now, source="engine mailbox")
    return address


def may_suppress(kind: FeedbackKind) -> bool:
    """Whether this kind of message may suppress (bounces and complaints; replies never)."""
    return kind in (FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT)
