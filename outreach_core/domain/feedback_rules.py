"""The rules that tell what a message in a sending mailbox is, each a small pure function.

- a delivery status notification (RFC 3464 in RFC 6522 `multipart/report`): `is_dsn`, and the
  verdict of one recipient block `dsn_outcome` (`failed` + 5.x.x hard, 4.x.x or `delayed` soft);
- a feedback-loop complaint (RFC 5965 ARF): `is_arf_complaint`;
- an automatic reply (RFC 3834 and the headers common servers add): `is_auto_reply`;
- a reply from a person: `match_reply`, against the Message-IDs we sent and the addresses we
  sent to (both passed in by the caller; no store here);
- when soft bounces add up to a suppression: `soft_bounces_suppress`.

`mailbox_feedback.classify` applies them in order to one raw message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from email.message import Message
from enum import StrEnum

from outreach_core.domain.mail_parts import (
    content_type,
    field_blocks,
    header,
    parts,
    report_type,
)


class FeedbackKind(StrEnum):
    """What one message in a sending mailbox is."""

    #: a DSN saying a recipient failed permanently (5.x.x): the address is suppressed
    HARD_BOUNCE = "hard_bounce"
    #: a DSN saying delivery is delayed or failed for now (4.x.x): recorded, not suppressed
    SOFT_BOUNCE = "soft_bounce"
    #: a feedback-loop report that a recipient marked our message as spam
    COMPLAINT = "complaint"
    #: a vacation notice or other automatic answer: not a reply
    AUTO_REPLY = "auto_reply"
    #: a person answered one of our messages
    REPLY = "reply"
    #: none of these (newsletters, non-standard bounces, unreadable mail): left for a person
    OTHER = "other"


class ReplyEvidence(StrEnum):
    """Why a message counts as a reply."""

    #: its In-Reply-To or References name one of our Message-IDs
    THREAD = "thread"
    #: only its From is one of our recipients (a client that dropped the threading headers):
    #: weaker evidence, for the caller to confine to the workflow's window
    SENDER = "sender"


#: the report-types of a DSN (RFC 6522 / RFC 3464) and its SMTPUTF8 form (RFC 6533)
DSN_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
#: the ARF report part (RFC 5965)
ARF_REPORT_TYPE = "message/feedback-report"
#: Feedback-Type values that are a complaint (`abuse`: marked as spam; `fraud`: as phishing);
#: `not-spam`, `virus` and `other` are not
COMPLAINT_FEEDBACK_TYPES = frozenset({"abuse", "fraud"})
#: permanent codes that say "try later" in practice: 5.2.2 mailbox full
SOFT_PERMANENT_STATUSES = frozenset({"5.2.2"})
#: the From local parts of mail systems (their non-standard bounces are left for a person)
MAIL_SYSTEM_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
#: Precedence values that mark automatic mail (`list` marks list traffic: `is_list_mail`)
AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk"})
#: RFC 2369 / RFC 2919 headers of mailing-list and newsletter mail
LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_ENHANCED_IN_TEXT = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC_IN_TEXT = re.compile(r"^\s*(?:[\w-]+;\s*)?([245])\d\d\b")

#: the start of a vacation or out-of-office subject, casefolded: English, German, French,
#: Spanish, Italian, Dutch, Portuguese, Scandinavian, Polish (Outlook prefixes "Automatic
#: reply:" in the mailbox's language). Only at the start: "Re: out of office next week?" is a
#: person's reply.
_VACATION_SUBJECT = re.compile(
    r"^[\W_]*(?:out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply"
    r"|auto[- ]?response|vacation (?:reply|notice|response)|on (?:vacation|holiday|leave)"
    r"|abwesenheitsnotiz|automatische antwort|abwesenheit"
    r"|réponse automatique|absence du bureau|absent du bureau|message d'absence"
    r"|respuesta automática|fuera de la oficina"
    r"|risposta automatica|fuori ufficio"
    r"|automatisch antwoord|afwezigheidsbericht|afwezig"
    r"|resposta automática|fora do escritório"
    r"|autosvar|frånvaro|fravær"
    r"|automatyczna odpowiedź|poza biurem)\b"
)


def is_dsn(message: Message) -> bool:
    """A delivery status notification: a `multipart/report` of report-type `delivery-status`,
    or a `multipart/report` holding a delivery-status part."""
    kind = report_type(message)
    if kind in {"delivery-status", "global-delivery-status"}:
        return True
    if content_type(message) != "multipart/report":
        return False
    return any(content_type(part) in DSN_STATUS_TYPES for part in parts(message))


def enhanced_status(status: str, diagnostic: str = "") -> str | None:
    """The RFC 3463 code `X.Y.Z` of a recipient: its Status field (or the diagnostic's code of
    the same class when Status is a bare `X.0.0`), or failing that the first code in its
    Diagnostic-Code, or failing that `X.0.0` from the basic reply code there."""
    status = status.strip().split(" ", 1)[0] if status.strip() else ""
    found = _ENHANCED_IN_TEXT.search(diagnostic)
    in_text = ".".join(found.groups()) if found else None
    if _ENHANCED.match(status):
        # Exim and others write the bare class (`5.0.0`) and the detail in the diagnostic
        generic = status.endswith(".0.0")
        return in_text if generic and in_text and in_text[0] == status[0] else status
    if in_text:
        return in_text
    basic = _BASIC_IN_TEXT.match(diagnostic)
    return f"{basic.group(1)}.0.0" if basic else None


def dsn_outcome(
    action: str,
    status: str | None,
    *,
    soft_statuses: Collection[str] = SOFT_PERMANENT_STATUSES,
) -> FeedbackKind | None:
    """The verdict of one DSN recipient block, or None when it is no bounce.

    `failed` with a 5.x.x status (or none: `failed` is permanent by definition) is a hard
    bounce; `failed` with 4.x.x, or a status in `soft_statuses`, and any `delayed` are soft;
    `delivered`, `relayed` and `expanded` are no bounce."""
    action = action.strip().lower()
    code_class = status[0] if status else None
    if action == "delayed":
        return FeedbackKind.SOFT_BOUNCE
    if action != "failed":
        return None
    if code_class == "4" or (status is not None and status in soft_statuses):
        return FeedbackKind.SOFT_BOUNCE
    return FeedbackKind.HARD_BOUNCE


def arf_feedback_type(message: Message) -> str | None:
    """The Feedback-Type of an ARF report (lower case), or None when `message` is none."""
    if report_type(message) != "feedback-report":
        return None
    for part in parts(message):
        if content_type(part) == ARF_REPORT_TYPE:
            for block in field_blocks(part):
                value = header(block, "Feedback-Type")
                if value:
                    return value.lower()
            return ""
    return ""


def is_arf_complaint(message: Message) -> bool:
    """An ARF report (report-type `feedback-report`) whose Feedback-Type is a complaint."""
    return arf_feedback_type(message) in COMPLAINT_FEEDBACK_TYPES


def is_mail_system(sender: str | None) -> bool:
    """Whether `sender` is a mail system's address (MAILER-DAEMON@…, postmaster@…)."""
    if not sender:
        return False
    return sender.rpartition("@")[0].lower() in MAIL_SYSTEM_LOCAL_PARTS


def is_list_mail(message: Message) -> bool:
    """Mailing-list or newsletter mail (List-Id, List-Unsubscribe or List-Post present)."""
    return any(header(message, name) for name in LIST_HEADERS)


def is_vacation_subject(subject: str) -> bool:
    """Whether a subject starts like an out-of-office notice in one of several languages."""
    text = unicodedata.normalize("NFC", subject).casefold()
    return _VACATION_SUBJECT.match(text) is not None


def is_auto_reply(message: Message) -> bool:
    """An automatic answer: `Auto-Submitted` other than `no` (RFC 3834), `X-Autoreply`,
    `X-Autorespond`, `X-Autogenerated: Reply`, `Precedence: auto_reply/bulk/junk`, or, as a
    last hint, a vacation subject. (`X-Auto-Response-Suppress` asks others not to answer
    automatically; it does not say the message itself is automatic, so it is not a sign.)"""
    submitted = header(message, "Auto-Submitted").split(";", 1)[0].strip().lower()
    if submitted and submitted != "no":
        return True
    autoreply = header(message, "X-Autoreply").lower()
    if autoreply and autoreply not in {"no", "false", "0"}:
        return True
    if header(message, "X-Autorespond"):
        return True
    if header(message, "X-Autogenerated").lower() == "reply":
        return True
    if header(message, "Precedence").lower() in AUTO_PRECEDENCE:
        return True
    return is_vacation_subject(header(message, "Subject"))


def match_reply(
    thread_ids: Iterable[str],
    sender: str | None,
    our_message_ids: Collection[str],
    recipients: Collection[str],
) -> ReplyEvidence | None:
    """Why a message is a reply to us, or None: its threading ids (In-Reply-To, References)
    name one of `our_message_ids` (`<id>` form), or its `sender` is one of `recipients`
    (compared without regard to case)."""
    if any(thread_id in our_message_ids for thread_id in thread_ids):
        return ReplyEvidence.THREAD
    if sender and sender.casefold() in {address.casefold() for address in recipients}:
        return ReplyEvidence.SENDER
    return None


#: the default soft-bounce rule: this many soft bounces ...
SOFT_BOUNCE_LIMIT = 3
#: ... within this many days suppress the address
SOFT_BOUNCE_DAYS = 30


def soft_bounces_suppress(
    bounce_times: Iterable[datetime],
    now: datetime,
    *,
    limit: int = SOFT_BOUNCE_LIMIT,
    days: float = SOFT_BOUNCE_DAYS,
) -> bool:
    """Whether an address with soft bounces at `bounce_times` is suppressed at `now`: at least
    `limit` of them fall within the `days` days up to `now` (later ones are not counted)."""
    if limit < 1:
        raise ValueError(f"soft bounce limit must be at least 1, not {limit}")
    if days <= 0:
        raise ValueError(f"soft bounce days must be more than 0, not {days}")
    since = now - timedelta(days=days)
    return sum(1 for moment in bounce_times if since <= moment <= now) >= limit
