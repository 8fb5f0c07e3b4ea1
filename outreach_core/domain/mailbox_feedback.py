"""What one message in a sending mailbox says about our deliveries: `classify`.

A message is, in this order (the first that applies):
1. a DSN (`feedback_rules.is_dsn`): a hard bounce when any recipient failed permanently, else
   a soft bounce when any was delayed or failed for now, else `other` (a `delivered` or
   `relayed` notice);
2. an ARF report: a complaint when its Feedback-Type is `abuse` or `fraud`, else `other`;
3. from a mail system (MAILER-DAEMON, postmaster) but no DSN: `other` (a non-standard bounce
   is left for a person rather than guessed at);
4. newsletter or list mail that names none of our messages and comes from none of our
   recipients: `other`;
5. an automatic reply (`feedback_rules.is_auto_reply`): `auto_reply`;
6. a reply (`feedback_rules.match_reply`): `reply`, threaded or by sender;
7. anything else: `other`.

The `Feedback` carries what finds the original delivery (the returned original's Message-ID and
`X-Outreach-Delivery`, the DSN's recipients, the message's own threading ids and From) and the
verdict's details; it never raises, whatever the bytes (unreadable mail is `other` with
`parse_error` set). Reading the mailbox and updating deliveries are the caller's.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import datetime
from email.message import Message

from outreach_core.domain.feedback_rules import (
    ARF_REPORT_TYPE,
    COMPLAINT_FEEDBACK_TYPES,
    DSN_STATUS_TYPES,
    FeedbackKind,
    ReplyEvidence,
    arf_feedback_type,
    dsn_outcome,
    enhanced_status,
    is_auto_reply,
    is_dsn,
    is_list_mail,
    is_mail_system,
    match_reply,
)
from outreach_core.domain.mail_parts import (
    content_type,
    field_blocks,
    header,
    header_values,
    message_ids,
    parse_date,
    parse_message,
    parts,
    returned_headers,
    single_address,
    typed_address,
)
from outreach_core.domain.message import DELIVERY_HEADER

#: a delivery id longer than this is no id of ours
_MAX_ID_DIGITS = 18


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient block of a DSN."""

    final_recipient: str | None
    original_recipient: str | None
    action: str
    #: the RFC 3463 code (`5.1.1`), from Status or else the diagnostic
    status: str | None
    diagnostic: str
    #: hard_bounce, soft_bounce, or None (delivered, relayed, expanded)
    outcome: FeedbackKind | None


@dataclass(frozen=True)
class Feedback:
    """What one mailbox message is, and what finds the delivery it is about."""

    kind: FeedbackKind
    #: Message-ID(s) of the original a DSN or ARF report returns (`<id>` form)
    original_message_ids: tuple[str, ...] = ()
    #: X-Outreach-Delivery values of the returned original
    delivery_ids: tuple[int, ...] = ()
    #: Final-/Original-Recipient addresses of a DSN, Original-Rcpt-To of an ARF report
    recipients: tuple[str, ...] = ()
    #: In-Reply-To then References ids of the message itself (`<id>` form, no repeats)
    thread_ids: tuple[str, ...] = ()
    #: the From address of the message itself
    sender: str | None = None
    #: for a bounce: the deciding recipient's status code, diagnostic and action
    status: str | None = None
    diagnostic: str | None = None
    action: str | None = None
    #: every recipient block of a DSN
    statuses: tuple[RecipientStatus, ...] = ()
    #: for an ARF report: its Feedback-Type (lower case)
    feedback_type: str | None = None
    #: for a reply: why it is one
    reply_evidence: ReplyEvidence | None = None
    #: the message's Date, or None when missing or unreadable
    date: datetime | None = None
    message_id: str | None = None
    subject: str = ""
    #: why the message could not be read (the exception's name), for the log only
    parse_error: str | None = field(default=None, compare=False)


def classify(
    raw: bytes,
    *,
    our_message_ids: Collection[str] = frozenset(),
    recipients: Collection[str] = frozenset(),
) -> Feedback:
    """The `Feedback` of one raw message. `our_message_ids` are the Message-IDs we sent
    (`<id>` form; `mail_parts.normalize_message_id` makes it) and `recipients` the addresses a
    reply may come from (the caller keeps them to the workflows' windows)."""
    try:
        message = parse_message(raw)
        return _classify(message, our_message_ids, recipients)
    except Exception as exc:
        # anyone can send a mailbox anything, and the stdlib parser has raised assorted errors
        # on hostile input: such a message is left for a person, and the next one is read
        return Feedback(FeedbackKind.OTHER, parse_error=type(exc).__name__)


def _classify(
    message: Message, our_message_ids: Collection[str], recipients: Collection[str]
) -> Feedback:
    base = _common(message)
    if is_dsn(message):
        return _from_dsn(message, base)
    feedback_type = arf_feedback_type(message)
    if feedback_type is not None:
        return _from_arf(message, base, feedback_type)
    if is_mail_system(base.sender):
        return base
    evidence = match_reply(base.thread_ids, base.sender, our_message_ids, recipients)
    if evidence is None and is_list_mail(message):
        return base
    if is_auto_reply(message):
        return _replace(base, kind=FeedbackKind.AUTO_REPLY)
    if evidence is not None:
        return _replace(base, kind=FeedbackKind.REPLY, reply_evidence=evidence)
    return base


def _common(message: Message) -> Feedback:
    """The facts every message has: sender, date, ids, subject (kind `other`)."""
    thread_ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in header_values(message, name):
            thread_ids.extend(i for i in message_ids(value) if i not in thread_ids)
    own = message_ids(header(message, "Message-ID"))
    return Feedback(
        FeedbackKind.OTHER,
        thread_ids=tuple(thread_ids),
        sender=single_address(header(message, "From")),
        date=parse_date(header(message, "Date")),
        message_id=own[0] if own else None,
        subject=header(message, "Subject"),
    )


def _original_ids(message: Message) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Message-ID(s) and X-Outreach-Delivery values of the original a report returns."""
    original = returned_headers(message)
    if original is None:
        return (), ()
    ids: list[str] = []
    for value in header_values(original, "Message-ID"):
        ids.extend(i for i in message_ids(value) if i not in ids)
    deliveries: list[int] = []
    for value in header_values(original, DELIVERY_HEADER):
        digits = value.isascii() and value.isdigit() and len(value) <= _MAX_ID_DIGITS
        if digits and int(value) not in deliveries:
            deliveries.append(int(value))
    return tuple(ids), tuple(deliveries)


def recipient_statuses(message: Message) -> tuple[RecipientStatus, ...]:
    """The recipient blocks of a DSN's delivery-status part (none when it has no such part)."""
    for part in parts(message):
        if content_type(part) in DSN_STATUS_TYPES:
            return tuple(
                _recipient_status(block)
                for block in field_blocks(part)
                if header(block, "Final-Recipient") or header(block, "Action")
            )
    return ()


def _recipient_status(block: Message) -> RecipientStatus:
    action = header(block, "Action").lower()
    diagnostic = " ".join(header(block, "Diagnostic-Code").split())
    status = enhanced_status(header(block, "Status"), diagnostic)
    return RecipientStatus(
        final_recipient=typed_address(header(block, "Final-Recipient")),
        original_recipient=typed_address(header(block, "Original-Recipient")),
        action=action,
        status=status,
        diagnostic=diagnostic,
        outcome=dsn_outcome(action, status),
    )


def _from_dsn(message: Message, base: Feedback) -> Feedback:
    statuses = recipient_statuses(message)
    original_ids, deliveries = _original_ids(message)
    addresses: list[str] = []
    for entry in statuses:
        for address in (entry.final_recipient, entry.original_recipient):
            if address and address not in addresses:
                addresses.append(address)
    deciding = next(
        (s for s in statuses if s.outcome is FeedbackKind.HARD_BOUNCE),
        next((s for s in statuses if s.outcome is FeedbackKind.SOFT_BOUNCE), None),
    )
    return _replace(
        base,
        kind=deciding.outcome if deciding and deciding.outcome else FeedbackKind.OTHER,
        original_message_ids=original_ids,
        delivery_ids=deliveries,
        recipients=tuple(addresses),
        statuses=statuses,
        status=deciding.status if deciding else None,
        diagnostic=deciding.diagnostic if deciding else None,
        action=deciding.action if deciding else None,
    )


def _from_arf(message: Message, base: Feedback, feedback_type: str) -> Feedback:
    original_ids, deliveries = _original_ids(message)
    addresses: list[str] = []
    for part in parts(message):
        if content_type(part) == ARF_REPORT_TYPE:
            for block in field_blocks(part):
                for value in header_values(block, "Original-Rcpt-To"):
                    address = single_address(value)
                    if address and address not in addresses:
                        addresses.append(address)
            break
    complaint = feedback_type in COMPLAINT_FEEDBACK_TYPES
    return _replace(
        base,
        kind=FeedbackKind.COMPLAINT if complaint else FeedbackKind.OTHER,
        original_message_ids=original_ids,
        delivery_ids=deliveries,
        recipients=tuple(addresses),
        feedback_type=feedback_type or None,
    )
