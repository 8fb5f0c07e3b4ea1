"""The unsubscribe mailbox over IMAP (stdlib `imaplib`): connect, log in, find the new
messages, fetch one without marking it read, flag it; and `redact`, which masks the password in
whatever an IMAP error says.

Only new messages are searched (`UID SEARCH UNSEEN UNFLAGGED`), so marking a message \\Seen or
\\Flagged takes it out of every later pass. Every failure raises one of `IMAP_FAILURES`, its
text possibly echoing the password: mask it with `redact` before it is shown.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from enum import StrEnum

from outreach_core.adapters.imap_url import ImapMailbox, Security
from outreach_core.domain.unsubscribe_requests import MAX_MESSAGE_BYTES, Action

#: seconds a connect or a reply from the IMAP server may take
IMAP_TIMEOUT_S = 30.0
#: an open connection to the IMAP server
ImapClient = imaplib.IMAP4
#: what a connection, login or protocol failure raises
IMAP_FAILURES = (imaplib.IMAP4.error, OSError)

_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class Unread(StrEnum):
    """Why a message's bytes were not fetched."""

    #: larger than MAX_MESSAGE_BYTES
    TOO_LARGE = "too_large"
    #: expunged (by a person or another client) between the search and the fetch
    GONE = "gone"


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


def connect(mailbox: ImapMailbox, context: ssl.SSLContext | None) -> ImapClient:
    """A connection protected as the URL says; `context` replaces the system's trust store."""
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


def checked(reply: tuple[str, list[object]], what: str) -> list[object]:
    """The reply's data, or the error of a command the server did not answer OK."""
    status, data = reply
    if status != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise imaplib.IMAP4.error(f"{what} answered {status} {detail}".strip())
    return data


def login(
    client: ImapClient, mailbox: ImapMailbox, *, where: str = "in OUTREACH_UNSUBSCRIBE_IMAP_URL"
) -> None:
    """LOGIN with the mailbox's user and password; a refusal says what to check and `where`
    the user and password are set, never the password itself."""
    try:
        client.login(mailbox.user, mailbox.password)
    except imaplib.IMAP4.error as exc:
        # imaplib raises with the server's reply as bytes (b'...'); say it plainly, and what to do
        reply = exc.args[0] if exc.args else ""
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        raise imaplib.IMAP4.error(
            f"LOGIN failed ({text.strip() or 'no reason given'}): check the user and password "
            f"{where}"
        ) from None


def select(client: ImapClient, folder: str) -> None:
    """SELECT the folder the requests arrive in."""
    checked(client.select(f'"{folder}"'), f"SELECT {folder}")


def unseen_uids(client: ImapClient) -> list[int]:
    """The UIDs of the messages neither read nor flagged yet, oldest first."""
    data = checked(client.uid("SEARCH", "UNSEEN", "UNFLAGGED"), "SEARCH")
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


def fetch(client: ImapClient, uid: int) -> bytes | Unread:
    """The message's bytes (BODY.PEEK: not marking it \\Seen), or why they were not read."""
    size = _size(checked(client.uid("FETCH", str(uid), "(RFC822.SIZE)"), "FETCH"), uid)
    if size is None:
        return Unread.GONE
    if size > MAX_MESSAGE_BYTES:
        return Unread.TOO_LARGE
    data = checked(client.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return Unread.GONE


def mark(client: ImapClient, uid: int, action: Action) -> None:
    """\\Seen for a suppressed request, \\Flagged for one left to a human."""
    flag = "(\\Seen)" if action is Action.SUPPRESS else "(\\Flagged)"
    checked(client.uid("STORE", str(uid), "+FLAGS.SILENT", flag), "STORE")
