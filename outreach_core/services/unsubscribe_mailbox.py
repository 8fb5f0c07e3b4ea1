"""Unsubscribe requests that arrive by mail: the reading side of the List-Unsubscribe `mailto:`.

Each message carries `mailto:ADDRESS?subject=unsubscribe%20TOKEN`, TOKEN being the recipient's
own HMAC token (`unsubscribe_links.token`). A request is honoured only when the token in its subject
(or, failing that, at the start of its text) is the token of its From address, so nobody can
unsubscribe somebody else. The decision is pure (`parse_request`, `decide`); `read_mailbox`
is the edge: IMAP (stdlib `imaplib`), the suppression list, the flags.

One pass: LOGIN, SELECT the folder, `UID SEARCH UNSEEN UNFLAGGED`, and per message:
- valid request: the address is suppressed (reason unsubscribed, audited, like the one-click
  link) and the message is marked \\Seen;
- anything else: nothing is suppressed, the message is marked \\Flagged and left unread for a
  human, and a log line says why (never the token, never the password).
Either flag takes the message out of the search, so no message is handled twice. A message is
flagged only after the database has committed: a pass that dies in between leaves it to the
next pass, which suppresses again harmlessly (suppressing is idempotent, audited once).
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from enum import StrEnum

from outreach_core.adapters.imap_url import ImapMailbox, Security
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import unsubscribe_links
from outreach_core.errors import InputError, MailboxError
from outreach_core.services import compliance

log = logging.getLogger("outreach.mailbox")

#: a message larger than this is not read (an unsubscribe request is a few hundred bytes)
MAX_MESSAGE_BYTES = 256 * 1024
#: how much of the text part is searched for the token when the subject has none
BODY_SEARCH_CHARS = 2000
#: seconds a connect or a reply from the IMAP server may take
IMAP_TIMEOUT_S = 30.0
#: messages handled per pass at most (the rest wait for the next): a first read of a mailbox
#: with a backlog must not hold the daemon's loop, which also sends, for long
MAX_PER_PASS = 200
#: the source recorded on the suppression (`compliance.unsubscribe_address(via=…)`)
VIA = "mailto"

#: `unsubscribe TOKEN`, also after `Re:`, in any case, with any spacing or punctuation between;
#: a token is 22 URL-safe base64 characters (unsubscribe_links.TOKEN_BYTES = 16)
_TOKEN = re.compile(
    rf"\b{unsubscribe_links.MAILTO_SUBJECT_WORD}\W{{1,5}}([A-Za-z0-9_-]{{22}})(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class Unread(StrEnum):
    """Why a message's bytes were not fetched."""

    #: larger than MAX_MESSAGE_BYTES
    TOO_LARGE = "too_large"
    #: expunged (by a person or another client) between the search and the fetch
    GONE = "gone"


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

    @classmethod
    def flag(cls, reason: FlagReason, email: str | None = None) -> Decision:
        return cls(Action.FLAG, email=email, reason=reason)

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
        log.warning("event=mailto.unparsed error=%s", type(exc).__name__)
        return Decision.flag(FlagReason.UNREADABLE)
    return decide(request, key)


# --- the edge: IMAP and the suppression list ----------------------------------------------------


@dataclass(frozen=True)
class Handled:
    """One message of a pass and what was done with it."""

    uid: int
    decision: Decision

    def __str__(self) -> str:
        return f"message {self.uid}: {self.decision}"


@dataclass
class PassReport:
    """What one pass over the mailbox did."""

    mailbox: str
    handled: list[Handled] = field(default_factory=list)
    #: new messages left for the next pass (over the per-pass limit)
    left: int = 0

    @property
    def suppressed(self) -> list[str]:
        return [
            h.decision.email or "" for h in self.handled if h.decision.action is Action.SUPPRESS
        ]

    @property
    def flagged(self) -> int:
        return sum(h.decision.action is Action.FLAG for h in self.handled)

    def __str__(self) -> str:
        left = f", {self.left} left for the next pass" if self.left else ""
        return (
            f"{self.mailbox}: {len(self.handled)} new messages, {len(self.suppressed)} "
            f"addresses suppressed, {self.flagged} flagged for a human{left}"
        )


def _written_forms(secret: str) -> set[str]:
    """How `secret` may be spelled in an error: as is, as imaplib quotes it for LOGIN
    (backslash and double quote escaped), and each of those as the repr imaplib puts server
    replies in its errors with (bytes or str: backslashes doubled, quotes escaped)."""
    quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
    forms = {secret, quoted}
    forms |= {repr(form)[1:-1] for form in (secret, quoted)}
    forms |= {repr(form.encode(errors="backslashreplace"))[2:-1] for form in (secret, quoted)}
    return forms


def redact(text: str, secret: str) -> str:
    """`text` with every spelling of `secret` masked (server replies may echo input)."""
    if not secret:
        return text
    for form in sorted(_written_forms(secret), key=len, reverse=True):  # longest first
        text = text.replace(form, "***")
    return text


def _connect(mailbox: ImapMailbox, context: ssl.SSLContext | None) -> imaplib.IMAP4:
    if mailbox.security is Security.TLS:
        return imaplib.IMAP4_SSL(
            mailbox.host,
            mailbox.port,
            ssl_context=context or ssl.create_default_context(),
            timeout=IMAP_TIMEOUT_S,
        )
    client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=IMAP_TIMEOUT_S)
    if mailbox.security is Security.STARTTLS:
        try:
            client.starttls(ssl_context=context or ssl.create_default_context())
        except BaseException:
            # the caller's `with` has not begun: without this the socket stays open for as
            # long as the error (and its traceback, which holds the client) is kept
            client.shutdown()
            raise
    return client


def _checked(reply: tuple[str, list[object]], what: str) -> list[object]:
    status, data = reply
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise imaplib.IMAP4.error(f"{what} answered {status} {detail}".strip())
    return data


def _unseen_uids(client: imaplib.IMAP4) -> list[int]:
    data = _checked(client.uid("SEARCH", "UNSEEN", "UNFLAGGED"), "SEARCH")
    words = b" ".join(d for d in data if isinstance(d, bytes)).split()
    return sorted(int(w) for w in words)


def _size(data: list[object], uid: int) -> int | None:
    """RFC822.SIZE from the FETCH response about `uid` (others may be unsolicited updates)."""
    this_uid = re.compile(rb"\bUID %d\b" % uid)
    for item in data:
        if isinstance(item, bytes) and this_uid.search(item):
            size = _SIZE.search(item)
            if size:
                return int(size.group(1))
    return None


def _fetch(client: imaplib.IMAP4, uid: int) -> bytes | Unread:
    """The message's bytes (BODY.PEEK: not marking it \\Seen), or why they were not read."""
    size = _size(_checked(client.uid("FETCH", str(uid), "(RFC822.SIZE)"), "FETCH"), uid)
    if size is None:
        return Unread.GONE
    if size > MAX_MESSAGE_BYTES:
        return Unread.TOO_LARGE
    data = _checked(client.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return Unread.GONE


def _apply(ws: Workspace, decision: Decision) -> Decision:
    """Suppress for a SUPPRESS decision; what was actually done (an address the suppression
    list refuses is flagged instead)."""
    if decision.action is not Action.SUPPRESS:
        return decision
    assert decision.email is not None and decision.token is not None
    try:
        verified = compliance.unsubscribe_address(ws, decision.email, decision.token, via=VIA)
    except InputError:  # a token can only be made for an address we sent to, but be safe
        return Decision.flag(FlagReason.NO_SENDER, decision.email)
    if not verified:  # the key changed between deciding and suppressing
        return Decision.flag(FlagReason.TOKEN_MISMATCH, decision.email)
    return decision


def _mark(client: imaplib.IMAP4, uid: int, decision: Decision) -> None:
    flag = "(\\Seen)" if decision.action is Action.SUPPRESS else "(\\Flagged)"
    _checked(client.uid("STORE", str(uid), "+FLAGS.SILENT", flag), "STORE")


def _one_pass(
    ws: Workspace, client: imaplib.IMAP4, mailbox: ImapMailbox, report: PassReport, limit: int
) -> None:
    key = compliance.unsubscribe_key(ws)
    try:
        client.login(mailbox.user, mailbox.password)
    except imaplib.IMAP4.error as exc:
        # imaplib raises with the server's reply as bytes (b'...'); say it plainly, and what to do
        reply = exc.args[0] if exc.args else ""
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        raise imaplib.IMAP4.error(
            f"LOGIN failed ({text.strip() or 'no reason given'}): check the user and password "
            "in OUTREACH_UNSUBSCRIBE_IMAP_URL"
        ) from None
    _checked(client.select(f'"{mailbox.folder}"'), f"SELECT {mailbox.folder}")
    uids = _unseen_uids(client)
    report.left = max(0, len(uids) - limit)
    for uid in uids[:limit]:
        raw = _fetch(client, uid)
        if raw is Unread.GONE:
            continue
        if raw is Unread.TOO_LARGE:
            decision = Decision.flag(FlagReason.TOO_LARGE)
        else:
            assert isinstance(raw, bytes)
            decision = decide_message(raw, key)
        decision = _apply(ws, decision)
        _mark(client, uid, decision)
        report.handled.append(Handled(uid, decision))
        if decision.action is Action.SUPPRESS:
            log.info("event=mailto.unsubscribed message=%s", uid)
        else:
            log.warning("event=mailto.flagged message=%s reason=%s", uid, decision.reason)


def read_mailbox(
    ws: Workspace,
    mailbox: ImapMailbox,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limit: int = MAX_PER_PASS,
) -> PassReport:
    """One pass over the unsubscribe mailbox (see the module docstring), handling at most
    `limit` messages (oldest first); `ssl_context` replaces the system's trust store.

    A connection, login or protocol failure raises MailboxError naming the masked URL; what
    was handled before it stays handled (each message is committed and flagged on its own).
    """
    report = PassReport(mailbox=mailbox.display)
    try:
        with _connect(mailbox, ssl_context) as client:
            _one_pass(ws, client, mailbox, report, limit)
    except (imaplib.IMAP4.error, OSError) as exc:
        # imaplib puts the server's reply in the message; a server may echo what it was sent
        cause = redact(str(exc) or type(exc).__name__, mailbox.password)
        raise MailboxError(
            f"unsubscribe mailbox {mailbox.display}: {cause} "
            f"(after {len(report.handled)} messages handled)"
        ) from None
    return report
