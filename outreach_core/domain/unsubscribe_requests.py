"""Unsubscribe requests that arrive by mail, decided: what one message says and what to do.

Each message carries `mailto:ADDRESS?subject=unsubscribe%20TOKEN`, TOKEN being the recipient's
own HMAC token (`unsubscribe_links.token`). A request is honoured only when the token in its
subject (or, failing that, at the start of its text) is the token of its From address, so
nobody can unsubscribe somebody else: `parse_request` reads a message, `decide` judges it,
`decide_message` does both for raw bytes. Reading the mailbox and suppressing is
`services/unsubscribe_mailbox.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from enum import StrEnum

from outreach_core.domain import unsubscribe_links

#: a message larger than this is not read (an unsubscribe request is a few hundred bytes)
MAX_MESSAGE_BYTES = 256 * 1024
#: how much of the text part is searched for the token when the subject has none
BODY_SEARCH_CHARS = 2000

#: `unsubscribe TOKEN`, also after `Re:`, in any case, with any spacing or punctuation between;
#: a token is 22 URL-safe base64 characters (unsubscribe_links.TOKEN_BYTES = 16)
_TOKEN = re.compile(
    rf"\b{unsubscribe_links.MAILTO_SUBJECT_WORD}\W{{1,5}}([A-Za-z0-9_-]{{22}})(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)


class Action(StrEnum):
    """What is done with one message."""

    #: the From address is suppressed; the message is marked \\Seen
    SUPPRESS = "suppress"
    #: nothing is suppressed; the message is marked \\Flagged for a human
    FLAG = "flag"


class FlagReason(StrEnum):
    """Why a message was left for a human."""

    #: no From header, several addresses, or one that is not an address
    NO_SENDER = "no_sender"
    #: no `unsubscribe TOKEN` in the subject or the start of the text
    NO_TOKEN = "no_token"
    #: a token that is not the From address's: forged, or sent from another address
    TOKEN_MISMATCH = "token_mismatch"
    #: larger than MAX_MESSAGE_BYTES: not read
    TOO_LARGE = "too_large"
    #: the parser gave up on it (malformed headers or MIME)
    UNREADABLE = "unreadable"


FLAG_EXPLANATIONS = {
    FlagReason.NO_SENDER: "no single sender address in From",
    FlagReason.NO_TOKEN: "no unsubscribe token in the subject or text",
    FlagReason.TOKEN_MISMATCH: "the token is not the sender's (forged, or sent from another "
    "address)",
    FlagReason.TOO_LARGE: f"larger than {MAX_MESSAGE_BYTES} bytes, not read",
    FlagReason.UNREADABLE: "the message could not be parsed",
}


@dataclass(frozen=True)
class MailRequest:
    """What a message says: who sent it and the token it carries."""

    sender: str | None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Decision:
    """What to do with one message: suppress `email`, or flag it for `reason`."""

    action: Action
    email: str | None = None
    token: str | None = field(default=None, repr=False)
    reason: FlagReason | None = None
    #: for UNREADABLE, the name of the error the parser raised: for the log, not the decision
    parse_error: str | None = field(default=None, compare=False)

    @classmethod
    def flag(
        cls, reason: FlagReason, email: str | None = None, *, parse_error: str | None = None
    ) -> Decision:
        return cls(Action.FLAG, email=email, reason=reason, parse_error=parse_error)

    def __str__(self) -> str:
        if self.action is Action.SUPPRESS:
            return f"suppressed {self.email}"
        assert self.reason is not None
        who = f" (from {self.email})" if self.email else ""
        return f"flagged for a human: {FLAG_EXPLANATIONS[self.reason]}{who}"


def _sender(message: EmailMessage) -> str | None:
    header = message.get("From")
    addresses: tuple[Address, ...] = getattr(header, "addresses", ()) if header else ()
    if len(addresses) != 1:
        return None
    address = addresses[0].addr_spec.strip()
    local, at, domain = address.rpartition("@")
    return address if at and local and domain else None


def find_token(text: str) -> str | None:
    """The token after the word `unsubscribe` in `text`, or None."""
    found = _TOKEN.search(text)
    return found.group(1) if found else None


def _text_start(message: EmailMessage) -> str:
    """The start of the plain-text part (the whole body when it is not MIME)."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset or broken transfer encoding
        return ""
    return content[:BODY_SEARCH_CHARS] if isinstance(content, str) else ""


def parse_request(raw: bytes) -> MailRequest:
    """From address and token of one message (RFC 2047 subjects decoded, MIME walked)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    subject = str(message.get("Subject") or "")
    token = find_token(subject) or find_token(_text_start(message))
    return MailRequest(sender=_sender(message), token=token)


def decide(request: MailRequest, key: bytes) -> Decision:
    """Suppress the sender only when the token is the sender's own (case-insensitive)."""
    if request.sender is None:
        return Decision.flag(FlagReason.NO_SENDER)
    if request.token is None:
        return Decision.flag(FlagReason.NO_TOKEN, request.sender)
    if not unsubscribe_links.verify(key, request.sender, request.token):
        return Decision.flag(FlagReason.TOKEN_MISMATCH, request.sender)
    return Decision(Action.SUPPRESS, email=request.sender, token=request.token)


def decide_message(raw: bytes, key: bytes) -> Decision:
    """`decide` for one raw message (too large ones are not parsed, unparseable ones are
    flagged)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return Decision.flag(FlagReason.TOO_LARGE)
    try:
        request = parse_request(raw)
    except Exception as exc:
        # anyone can send this mailbox anything, and the stdlib's header parser has raised
        # assorted errors on malformed input over the years: one such message must not stop
        # every later pass at the same place, so it goes to a human like any other oddity
        return Decision.flag(FlagReason.UNREADABLE, parse_error=type(exc).__name__)
    return decide(request, key)
