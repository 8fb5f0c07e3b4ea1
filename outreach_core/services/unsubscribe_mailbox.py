"""Unsubscribe requests that arrive by mail: one pass over the mailbox the List-Unsubscribe
`mailto:` points at, each request decided and honoured through the suppression list.

What a message asks and whether it is honoured is pure (`domain/unsubscribe_requests.py`);
the IMAP side is `adapters/imap_mailbox.py`. One pass: LOGIN, SELECT the folder,
`UID SEARCH UNSEEN UNFLAGGED`, and per message:
- valid request: the address is suppressed (reason unsubscribed, audited, like the one-click
  link) and the message is marked \\Seen;
- anything else: nothing is suppressed, the message is marked \\Flagged and left unread for a
  human, and a log line says why (never the token, never the password).
Either flag takes the message out of the search, so no message is handled twice. A message is
flagged only after the database has committed: a pass that dies in between leaves it to the
next pass, which suppresses again harmlessly (suppressing is idempotent, audited once).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field

from outreach_core.adapters import imap_mailbox
from outreach_core.adapters.imap_mailbox import IMAP_FAILURES, ImapClient, Unread, redact
from outreach_core.adapters.imap_url import ImapMailbox
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.unsubscribe_requests import Action, Decision, FlagReason, decide_message
from outreach_core.errors import InputError, MailboxError
from outreach_core.services import compliance

__all__ = ["MAX_PER_PASS", "VIA", "Handled", "PassReport", "read_mailbox", "redact"]

log = logging.getLogger("outreach.mailbox")

#: messages handled per pass at most (the rest wait for the next): a first read of a mailbox
#: with a backlog must not hold the daemon's loop, which also sends, for long
MAX_PER_PASS = 200
#: the source recorded on the suppression (`compliance.unsubscribe_address(via=…)`)
VIA = "mailto"


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


def _one_pass(
    ws: Workspace, client: ImapClient, mailbox: ImapMailbox, report: PassReport, limit: int
) -> None:
    key = compliance.unsubscribe_key(ws)
    imap_mailbox.login(client, mailbox)
    imap_mailbox.select(client, mailbox.folder)
    uids = imap_mailbox.unseen_uids(client)
    report.left = max(0, len(uids) - limit)
    for uid in uids[:limit]:
        raw = imap_mailbox.fetch(client, uid)
        if raw is Unread.GONE:
            continue
        if raw is Unread.TOO_LARGE:
            decision = Decision.flag(FlagReason.TOO_LARGE)
        else:
            assert isinstance(raw, bytes)
            decision = decide_message(raw, key)
            if decision.parse_error:
                log.warning("event=mailto.unparsed error=%s", decision.parse_error)
        decision = _apply(ws, decision)
        imap_mailbox.mark(client, uid, decision.action)
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
        with imap_mailbox.connect(mailbox, ssl_context) as client:
            _one_pass(ws, client, mailbox, report, limit)
    except IMAP_FAILURES as exc:
        # imaplib puts the server's reply in the message; a server may echo what it was sent
        cause = redact(str(exc) or type(exc).__name__, mailbox.password)
        raise MailboxError(
            f"unsubscribe mailbox {mailbox.display}: {cause} "
            f"(after {len(report.handled)} messages handled)"
        ) from None
    return report
