"""An engine's own mailbox over IMAP (stdlib `imaplib`), read back for bounces, complaints and
replies: the folder's UIDVALIDITY, the UIDs above a high-water mark, a message's bytes without
marking it read, and marking it handled (a keyword, or a copy into another folder).

Nothing here ever sets \\Deleted or EXPUNGEs: the mailbox belongs to a person too. `examine`
opens a folder read-only (for the "check mailbox" button). Connecting and redacting are
`imap_mailbox`'s; every failure raises one of `IMAP_FAILURES`, possibly echoing the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from outreach_core.adapters import imap_mailbox
from outreach_core.adapters.imap_mailbox import (
    IMAP_FAILURES,
    IMAP_TIMEOUT_S,
    ImapClient,
    Unread,
    checked,
    connect,
    redact,
)
from outreach_core.adapters.imap_url import ImapMailbox

__all__ = [
    "HANDLED_KEYWORD",
    "IMAP_FAILURES",
    "IMAP_TIMEOUT_S",
    "FolderStatus",
    "Unread",
    "connect",
    "examine",
    "fetch",
    "login",
    "mark_handled",
    "new_uids",
    "redact",
    "select",
]

#: the keyword a handled message gets (RFC 3501 keywords are atoms; `$` marks a client's own)
HANDLED_KEYWORD = "$OutreachHandled"

_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")
_NUMBER = re.compile(rb"(\d+)")


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT or EXAMINE said about a folder."""

    uidvalidity: int
    message_count: int


def login(client: ImapClient, mailbox: ImapMailbox) -> None:
    """LOGIN; a refusal says what to check (the engine's mailbox URL), never the password."""
    imap_mailbox.login(client, mailbox, where="of the engine's mailbox URL")


def _open(client: ImapClient, folder: str, *, readonly: bool) -> FolderStatus:
    what = "EXAMINE" if readonly else "SELECT"
    data = checked(client.select(f'"{folder}"', readonly=readonly), f"{what} {folder}")
    count = int(data[0]) if data and isinstance(data[0], bytes) and data[0].isdigit() else 0
    _, values = client.response("UIDVALIDITY")
    validity = next(
        (
            int(m.group(1))
            for v in values
            if isinstance(v, bytes) and (m := _NUMBER.search(v)) is not None
        ),
        0,
    )
    return FolderStatus(uidvalidity=validity, message_count=count)


def select(client: ImapClient, folder: str) -> FolderStatus:
    """SELECT the folder (read-write: handled messages are flagged)."""
    return _open(client, folder, readonly=False)


def examine(client: ImapClient, folder: str) -> FolderStatus:
    """EXAMINE the folder: read-only, so nothing in it changes (not even \\Seen)."""
    return _open(client, folder, readonly=True)


def new_uids(client: ImapClient, last_uid: int) -> list[int]:
    """The UIDs above `last_uid`, oldest first. (`n:*` always matches the highest message,
    even below n, so the answer is filtered again.)"""
    data = checked(client.uid("SEARCH", "UID", f"{last_uid + 1}:*"), "SEARCH")
    words = b" ".join(d for d in data if isinstance(d, bytes)).split()
    return sorted(int(w) for w in words if w.isdigit() and int(w) > last_uid)


def _about(data: list[object], uid: int) -> bytes | None:
    this_uid = re.compile(rb"\bUID %d\b" % uid)
    for item in data:
        line = item[0] if isinstance(item, tuple) and item else item
        if isinstance(line, bytes) and this_uid.search(line):
            return line
    return None


def fetch(client: ImapClient, uid: int, *, max_bytes: int) -> tuple[bytes | Unread, set[str]]:
    """The message's bytes (BODY.PEEK[]: not marking it \\Seen) or why they were not read,
    with its flags."""
    data = checked(client.uid("FETCH", str(uid), "(FLAGS RFC822.SIZE)"), "FETCH")
    line = _about(data, uid)
    size = _SIZE.search(line) if line else None
    if line is None or size is None:
        return Unread.GONE, set()
    found = _FLAGS.search(line)
    flags = {f.decode(errors="replace") for f in found.group(1).split()} if found else set()
    if int(size.group(1)) > max_bytes:
        return Unread.TOO_LARGE, flags
    body = checked(client.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH")
    for item in body:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1], flags
    return Unread.GONE, flags


def mark_handled(client: ImapClient, uid: int, *, copy_to: str | None = None) -> None:
    """Flag the message with HANDLED_KEYWORD, after copying it into `copy_to` when named. The
    original is never deleted: a "move" that keeps it is a copy and a flag."""
    if copy_to:
        checked(client.uid("COPY", str(uid), f'"{copy_to}"'), f"COPY to {copy_to}")
    checked(client.uid("STORE", str(uid), "+FLAGS.SILENT", f"({HANDLED_KEYWORD})"), "STORE")
