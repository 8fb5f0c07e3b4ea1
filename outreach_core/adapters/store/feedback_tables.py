"""The tables of what comes back after sending: webhook events already seen, each engine
mailbox read back, and the events read from it. Same metadata as `tables`, which exports them."""

from __future__ import annotations

import sqlalchemy as sa

from outreach_core.adapters.store.columns import UTCDateTime, metadata

seen_webhook_events = sa.Table(
    "seen_webhook_events",
    metadata,
    # ses (the SNS MessageId), sendgrid (the signed bytes) or mailgun (the token)
    sa.Column("provider", sa.String(20), primary_key=True),
    # SHA-256 hex of the provider's id: a fixed size whatever the request held
    sa.Column("event_key", sa.String(64), primary_key=True),
    # rows older than the webhook max age are deleted: such requests are refused as stale
    sa.Column("seen_at", UTCDateTime(), nullable=False, index=True),
)


#: one row per engine mailbox read back: where the last pass stopped and how it went
mailbox_states = sa.Table(
    "mailbox_states",
    metadata,
    sa.Column(
        "engine_id",
        sa.Integer,
        sa.ForeignKey("engines.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("folder", sa.String(200), nullable=False),
    # the folder's UIDVALIDITY and the highest UID handled under it: a pass reads only UIDs
    # above it; a new UIDVALIDITY starts the folder over
    sa.Column("uidvalidity", sa.BigInteger),
    sa.Column("last_uid", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("message_count", sa.Integer),
    sa.Column("checked_at", UTCDateTime()),
    sa.Column("ok_at", UTCDateTime()),
    # the last pass's error (login refused, unreachable), passwords removed; NULL when it worked
    sa.Column("error", sa.Text),
    # the daemon reading it now, until when: one reader per mailbox across daemons
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_until", UTCDateTime()),
)

#: what one mailbox message said about one delivery: a bounce, complaint, auto-reply or reply
delivery_events = sa.Table(
    "delivery_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "delivery_id",
        sa.Integer,
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # `FeedbackKind`: hard_bounce, soft_bounce, complaint, auto_reply, reply
    sa.Column("kind", sa.String(20), nullable=False),
    # the mailbox message: "<engine id>:<uidvalidity>:<uid>"; with the delivery and kind it
    # makes the event's key, so a second pass over the same message records nothing new
    sa.Column("message_key", sa.String(120), nullable=False),
    sa.Column("engine_id", sa.Integer),
    sa.Column("email_normalized", sa.String(320)),
    # when the message says it was written (else when it was read)
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    # a bounce's RFC 3463 status (5.1.1) and diagnostic; a reply's subject
    sa.Column("status", sa.String(20)),
    sa.Column("detail", sa.Text),
    # who wrote it (a reply's From) and how it was tied to the delivery (thread, sender, dsn)
    sa.Column("sender", sa.String(320)),
    sa.Column("evidence", sa.String(20)),
    sa.UniqueConstraint(
        "message_key", "delivery_id", "kind", name="uq_delivery_events_message_delivery_kind"
    ),
    sa.Index("ix_delivery_events_kind_at", "kind", "at"),
    sa.Index("ix_delivery_events_delivery", "delivery_id"),
    sa.Index("ix_delivery_events_email_kind_at", "email_normalized", "kind", "at"),
)
