"""Engine mailboxes read back for bounces, complaints and replies: naming an engine's mailbox
(its URL encrypted, a masked copy shown), checking it without changing anything, and one pass
over every mailbox (what the daemon runs on an interval, and `read-feedback` once).

One pass over one mailbox:
1. claim it (`mailbox_states`, a lease: one daemon at a time), and commit;
2. LOGIN, SELECT the folder; a UIDVALIDITY other than the stored one starts the folder over;
3. `UID SEARCH` the UIDs above the high-water mark; per message, oldest first: fetch it with
   BODY.PEEK[] (size-capped), classify it, record what it says on its delivery
   (`feedback_apply`) and advance the high-water mark in one transaction; then flag it
   `$OutreachHandled` (and copy it into OUTREACH_FEEDBACK_HANDLED_FOLDER when set). A message
   that says nothing about our deliveries is left as it was; the mark passes it all the same;
4. record how the pass went: ok, or the error with the password masked.
Nothing is ever deleted or expunged. A failure never escapes `read_all`: the daemon's other
work goes on, and Home and the Engines page show the error.
"""

from __future__ import annotations

import logging
import ssl
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from outreach_core.adapters import crypto, imap_folder
from outreach_core.adapters.imap_url import ImapMailbox, parse_imap_url
from outreach_core.adapters.store import audit, engine_mailboxes, engines
from outreach_core.adapters.store.engine_mailboxes import EngineMailbox, MailboxState
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.errors import InputError, MailboxError, NotFound, OutreachError
from outreach_core.services.feedback_apply import Applied, apply_feedback, classify_for_engine

log = logging.getLogger("outreach.feedback")

#: messages read per mailbox and pass at most (the rest wait for the next pass)
MAX_PER_PASS = 500
#: a message larger than this is not fetched (a DSN returning a huge original); it is passed
MAX_FEEDBACK_BYTES = 5 * 1024 * 1024
#: how long a claim on a mailbox holds when its daemon dies mid-pass
LEASE = timedelta(minutes=15)
#: engine kinds that may name a mailbox (an HTTP provider reports by webhook instead)
MAILBOX_KINDS = frozenset({"smtp"})


@dataclass
class PassReport:
    """What one pass over one engine's mailbox did."""

    engine: str
    mailbox: str
    counts: Counter[str] = field(default_factory=Counter)
    #: messages recorded on a delivery (new events)
    recorded: int = 0
    suppressed: list[str] = field(default_factory=list)
    left: int = 0
    error: str | None = None
    #: another daemon held the mailbox
    skipped: bool = False
    #: the folder's UIDVALIDITY changed: read again from its start
    restarted: bool = False

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.engine}: {self.mailbox} is being read by another daemon"
        if self.error:
            return f"{self.engine}: {self.error}"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items())) or "no new messages"
        left = f", {self.left} left for the next pass" if self.left else ""
        return (
            f"{self.engine}: {kinds}; {self.recorded} recorded, "
            f"{len(self.suppressed)} suppressed{left}"
        )


@dataclass(frozen=True)
class MailboxStatus:
    """An engine's mailbox as the pages show it (never the password)."""

    engine_id: int
    engine_name: str
    display_url: str
    state: MailboxState | None

    @property
    def failing(self) -> bool:
        return self.state is not None and self.state.error is not None


# --- naming the mailbox ----------------------------------------------------------------------


def engine_id_by_name(ws: Workspace, name: str) -> int:
    """The id of the engine named `name` (NotFound otherwise)."""
    with ws.db.connect() as conn:
        for engine in engines.list_engines(conn):
            if engine.name == name:
                return engine.id
    raise NotFound(f"there is no engine named {name!r}")


def set_engine_mailbox(ws: Workspace, engine_id: int, url: str, *, actor: str) -> str:
    """Name the engine's mailbox: stored encrypted, its masked form returned (and shown)."""
    mailbox = parse_imap_url(url)  # InputError never repeats the password
    now = utcnow()
    with ws.db.begin() as conn:
        engine = engines.get_engine(conn, engine_id)
        if engine.kind not in MAILBOX_KINDS:
            raise InputError(
                f"engine {engine.name} is {engine.kind}: only an SMTP engine reads its mailbox "
                "(HTTP providers report bounces and complaints by webhook)"
            )
        engine_mailboxes.set_mailbox_url(
            conn, engine_id, url_encrypted=ws.encrypt(conn, url), display_url=mailbox.display
        )
        audit.record(
            conn, actor=actor, action="engine.mailbox", subject=f"engine {engine_id}", now=now,
            detail={"mailbox": mailbox.display},
        )  # fmt: skip
    return mailbox.display


def clear_engine_mailbox(ws: Workspace, engine_id: int, *, actor: str) -> None:
    """Stop reading the engine's mailbox and forget its URL."""
    now = utcnow()
    with ws.db.begin() as conn:
        engine_mailboxes.set_mailbox_url(conn, engine_id, url_encrypted=None, display_url=None)
        audit.record(
            conn, actor=actor, action="engine.mailbox_cleared", subject=f"engine {engine_id}",
            now=now,
        )  # fmt: skip


def mailbox_statuses(ws: Workspace) -> list[MailboxStatus]:
    """Every engine mailbox with the state of its last pass (for the Engines page and Home)."""
    with ws.db.connect() as conn:
        states = engine_mailboxes.list_states(conn)
        return [
            MailboxStatus(m.engine_id, m.engine_name, m.display_url, states.get(m.engine_id))
            for m in engine_mailboxes.engine_mailboxes(conn)
        ]


def failing_mailboxes(ws: Workspace) -> list[MailboxStatus]:
    """Mailboxes whose last pass failed (Home warns of them)."""
    return [status for status in mailbox_statuses(ws) if status.failing]


def _mailbox(ws: Workspace, engine_id: int) -> tuple[EngineMailbox, ImapMailbox]:
    with ws.db.connect() as conn:
        found = engine_mailboxes.engine_mailboxes(conn, engine_id)
    if not found:
        raise NotFound(f"engine {engine_id} has no mailbox")
    return found[0], parse_imap_url(crypto.decrypt(ws.fernet, found[0].url_encrypted))


def _failure(exc: BaseException, mailbox: ImapMailbox) -> str:
    """What went wrong, in words that never hold the password."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = f"no answer within {imap_folder.IMAP_TIMEOUT_S:g} s"
    elif isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        text = f"{type(exc).__name__}: {exc.strerror or text}"
    return f"{mailbox.display}: {imap_folder.redact(text, mailbox.password)}"


def check_mailbox(
    ws: Workspace, engine_id: int, *, ssl_context: ssl.SSLContext | None = None
) -> str:
    """Log in and EXAMINE the folder (read-only: nothing changes, not even \\Seen); a sentence
    with its message count. MailboxError, the password masked, when that fails."""
    entry, mailbox = _mailbox(ws, engine_id)
    try:
        with imap_folder.connect(mailbox, ssl_context) as client:
            imap_folder.login(client, mailbox)
            status = imap_folder.examine(client, mailbox.folder)
    except imap_folder.IMAP_FAILURES as exc:
        raise MailboxError(_failure(exc, mailbox)) from None
    return f"{entry.display_url}: {status.message_count} messages in {mailbox.folder}"


# --- one pass ----------------------------------------------------------------------------------


def _read(
    ws: Workspace,
    client: imap_folder.ImapClient,
    entry: EngineMailbox,
    mailbox: ImapMailbox,
    state: MailboxState,
    report: PassReport,
    limit: int,
) -> int:
    """Steps 2 and 3 of the module docstring; the folder's message count."""
    imap_folder.login(client, mailbox)
    folder = imap_folder.select(client, mailbox.folder)
    same = state.uidvalidity == folder.uidvalidity and state.folder == mailbox.folder
    last = state.last_uid if same else 0
    if state.uidvalidity is not None and not same:
        report.restarted = True
        log.warning("event=feedback.restart engine=%s reason=uidvalidity", entry.engine_id)
    uids = imap_folder.new_uids(client, last)
    report.left = max(0, len(uids) - limit)
    copy_to = ws.settings.feedback_handled_folder
    for uid in uids[:limit]:
        raw, flags = imap_folder.fetch(client, uid, max_bytes=MAX_FEEDBACK_BYTES)
        key = f"{entry.engine_id}:{folder.uidvalidity}:{uid}"
        applied = None
        if isinstance(raw, bytes) and imap_folder.HANDLED_KEYWORD not in flags:
            applied = _handle(ws, entry, raw, key, uid, mailbox.folder, folder.uidvalidity)
        if applied is None:  # unreadable, too large, gone, handled before: only passed
            with ws.db.begin() as conn:
                engine_mailboxes.advance(
                    conn, entry.engine_id, folder=mailbox.folder, uidvalidity=folder.uidvalidity,
                    last_uid=uid,
                )  # fmt: skip
        report.counts[applied.kind.value if applied else FeedbackKind.OTHER.value] += 1
        if applied is None:
            continue
        report.recorded += applied.recorded
        if applied.suppressed:
            report.suppressed.append(applied.suppressed)
        if applied.delivery_id is not None:
            imap_folder.mark_handled(client, uid, copy_to=copy_to)
    return folder.message_count


def _handle(
    ws: Workspace,
    entry: EngineMailbox,
    raw: bytes,
    key: str,
    uid: int,
    folder: str,
    uidvalidity: int,
) -> Applied | None:
    """Classify one message (reads only), then record it and move the mark in one
    transaction. None when the database refused what the message holds (logged): the caller
    passes it, so one hostile message cannot stop every later pass at itself."""
    now = utcnow()
    window = timedelta(days=ws.settings.feedback_reply_window_days)
    try:
        with ws.db.connect() as conn:
            feedback = classify_for_engine(conn, entry.engine_id, raw, now=now, reply_window=window)
        if feedback.parse_error:
            log.warning("event=feedback.unparsed message=%s error=%s", key, feedback.parse_error)
        with ws.db.begin() as conn:
            applied = apply_feedback(
                conn, feedback, engine_id=entry.engine_id, engine_name=entry.engine_name,
                message_key=key, settings=ws.settings, now=now,
            )  # fmt: skip
            engine_mailboxes.advance(
                conn, entry.engine_id, folder=folder, uidvalidity=uidvalidity, last_uid=uid
            )
    except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
        log.warning("event=feedback.refused message=%s error=%s", key, type(exc).__name__)
        return None
    return applied


def read_engine_mailbox(
    ws: Workspace,
    engine_id: int,
    *,
    holder: str,
    ssl_context: ssl.SSLContext | None = None,
    limit: int = MAX_PER_PASS,
) -> PassReport:
    """One pass over one engine's mailbox (the module docstring); never raises for the
    mailbox's sake: a failure is in the report and in the mailbox's state."""
    entry, mailbox = _mailbox(ws, engine_id)
    report = PassReport(engine=entry.engine_name, mailbox=entry.display_url)
    with ws.db.begin() as conn:
        state = engine_mailboxes.claim(
            conn, engine_id, folder=mailbox.folder, holder=holder, now=utcnow(), lease=LEASE
        )
    if state is None:
        report.skipped = True
        return report
    count: int | None = None
    try:
        with imap_folder.connect(mailbox, ssl_context) as client:
            count = _read(ws, client, entry, mailbox, state, report, limit)
    except imap_folder.IMAP_FAILURES as exc:
        report.error = _failure(exc, mailbox)
    except sa.exc.SQLAlchemyError as exc:
        report.error = f"{mailbox.display}: database error {type(exc).__name__}"
    except Exception as exc:  # a bug: name where, never the message (it may quote a reply)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        report.error = (
            f"{mailbox.display}: {type(exc).__name__} at "
            f"{where.filename.rsplit('/', 1)[-1]}:{where.lineno}"
        )
    _finish(ws, engine_id, holder, report, count)
    return report


def _finish(
    ws: Workspace, engine_id: int, holder: str, report: PassReport, count: int | None
) -> None:
    try:
        with ws.db.begin() as conn:
            engine_mailboxes.finish(
                conn, engine_id, holder=holder, now=utcnow(), error=report.error,
                message_count=count,
            )  # fmt: skip
    except sa.exc.SQLAlchemyError as exc:  # the database is away: the lease runs out by itself
        log.warning("event=feedback.unrecorded engine=%s error=%s", engine_id,
                    type(exc).__name__)  # fmt: skip
    if report.error:
        log.error("event=feedback.failed engine=%s reason=%r", engine_id, report.error)
    elif not report.skipped:
        log.info("event=feedback.read engine=%s %s", engine_id,
                 " ".join(f"{k}={n}" for k, n in sorted(report.counts.items())))  # fmt: skip


def read_all(
    ws: Workspace, *, holder: str, ssl_context: ssl.SSLContext | None = None
) -> list[PassReport]:
    """One pass over every engine mailbox, one after the other; never raises for a mailbox."""
    with ws.db.connect() as conn:
        ids = [m.engine_id for m in engine_mailboxes.engine_mailboxes(conn)]
    reports = []
    for engine_id in ids:
        try:
            reports.append(
                read_engine_mailbox(ws, engine_id, holder=holder, ssl_context=ssl_context)
            )
        except (OutreachError, sa.exc.SQLAlchemyError) as exc:
            log.error("event=feedback.failed engine=%s error=%s", engine_id, type(exc).__name__)
    return reports
