"""The scheduler daemon's work: register, heartbeat, and on each tick run what is due.

One tick, in order:
1. claim due schedules (each by one daemon only) and queue their runs, and queue the
   follow-up steps that are due (each once across daemons);
2. take over runs whose executor is gone; claim and send queued runs (`sending.work_once`);
3. help with SENDING runs other daemons hold, claiming delivery batches.

When `OUTREACH_UNSUBSCRIBE_IMAP_URL` is set, the daemon also reads the unsubscribe mailbox every
`OUTREACH_UNSUBSCRIBE_IMAP_INTERVAL_S` (`read_unsubscribes`) in a thread of its own
(`MailboxReader`): an IMAP server that is slow or gone (each reply may take
`imap_mailbox.IMAP_TIMEOUT_S`) never delays the tick that sends. A failed read is logged
and the next one tries again.

A side thread writes the daemon's heartbeat every DAEMON_HEARTBEAT_S, also while a long run is
being sent, so `--health`, Home and the owners of shared runs see it alive. Log lines are
`event=… key=value …` so they can be grepped and parsed.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.errors import ConfigError, OutreachError
from outreach_core.services import follow_ups, schedules, sending, unsubscribe_mailbox
from outreach_core.services.schedules import DAEMON_HEARTBEAT_S
from outreach_core.services.sending import StopSignal

log = logging.getLogger("outreach.daemon")

#: seconds a stopping daemon waits for a mailbox read in progress before leaving it behind
MAILBOX_STOP_WAIT_S = 5.0


def event(name: str, **fields: object) -> None:
    """One structured log line: `event=name key=value …` (values never hold secrets)."""
    parts = [f"event={name}"]
    for key, value in fields.items():
        text = str(value)
        parts.append(f"{key}={text!r}" if " " in text or not text else f"{key}={text}")
    log.info(" ".join(parts))


def claim_schedules(ws: Workspace, *, now: datetime | None = None) -> list[schedules.Claimed]:
    """Claim every due schedule (runs created, next_run_at advanced) and log each one."""
    claimed = schedules.claim_due_schedules(ws, now=now)
    for item in claimed:
        event(
            "schedule.claimed",
            schedule=item.schedule_id,
            run=item.run_id if item.run_id is not None else "-",
            next_run_at=f"{item.next_run_at:%Y-%m-%dT%H:%M:%SZ}",
            note=item.note,
        )
    return claimed


def queue_steps(ws: Workspace, *, clock: Clock = utcnow) -> list[follow_ups.QueuedStep]:
    """Queue every follow-up step that is due (each by one daemon only) and log each one."""
    queued = follow_ups.queue_due_steps(ws, clock=clock)
    for item in queued:
        event(
            "step.queued",
            run=item.run_id,
            previous_run=item.previous_run_id,
            workflow=item.workflow_id,
            step=item.step,
        )
    return queued


def tick(ws: Workspace, worker_id: str, stop: StopSignal, *, clock: Clock = utcnow) -> None:
    """One pass over due schedules and follow-up steps, orphaned and queued runs, and runs to
    help with. `clock` tells every stage the time (tests pass a hand-moved one).

    A database error (SQLite locked by another daemon for longer than the busy timeout,
    PostgreSQL restarting) ends the pass with a warning; the next tick tries again. A run that
    raises is ended with the reason by the executor (`event=run.failed`); anything else that
    escapes (a bug) ends the pass with an error line, never the daemon. Only a ConfigError
    (the secret key) stops it: no run can be sent without it.
    """
    try:
        claim_schedules(ws, now=clock())
        queue_steps(ws, clock=clock)
        for run in sending.adopt_dead_holders_runs(ws, worker_id=worker_id, stop=stop, clock=clock):
            event("run.adopted", run=run.id, status=run.status)
        for run in sending.work_once(ws, worker_id=worker_id, stop=stop, clock=clock):
            event("run.done", run=run.id, status=run.status, reason=run.status_reason or "-")
        for run_id in sending.assist_runs(ws, worker_id=worker_id, stop=stop, clock=clock):
            event("run.assisted", run=run_id)
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        log.warning("event=tick.deferred reason=%r retry=next_tick", reason)
    except ConfigError:
        raise
    except Exception as exc:
        # no traceback or message: either could quote a row or a URL with its password
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "event=tick.failed error=%s at=%s:%s retry=next_tick",
            type(exc).__name__,
            where.filename.rsplit("/", 1)[-1],
            where.lineno,
        )


def read_unsubscribes(ws: Workspace) -> unsubscribe_mailbox.PassReport | None:
    """One pass over the unsubscribe mailbox, if one is configured; None when it is not, or
    when the pass failed (logged as an error; the daemon carries on and tries next time)."""
    mailbox = ws.settings.unsubscribe_mailbox
    if mailbox is None:
        return None
    try:
        report = unsubscribe_mailbox.read_mailbox(ws, mailbox)
    except OutreachError as exc:  # MailboxError's message has the URL masked already
        log.error("event=mailbox.failed reason=%r retry=next_read", str(exc))
        return None
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if getattr(exc, "orig", None) else ""
        log.error(
            "event=mailbox.failed mailbox=%s reason=%r retry=next_read",
            mailbox.display,
            reason or type(exc).__name__,
        )
        return None
    except Exception as exc:
        # a bug must not stop the daemon's sending; the line names where it happened, and the
        # message is redacted (no traceback: it could quote a server reply with the password)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "event=mailbox.failed mailbox=%s error=%s reason=%r at=%s:%s retry=next_read",
            mailbox.display,
            type(exc).__name__,
            unsubscribe_mailbox.redact(str(exc), mailbox.password),
            where.filename.rsplit("/", 1)[-1],
            where.lineno,
        )
        return None
    event(
        "mailbox.read",
        mailbox=mailbox.display,
        messages=len(report.handled),
        suppressed=len(report.suppressed),
        flagged=report.flagged,
        left=report.left,
    )
    return report


class MailboxReader(threading.Thread):
    """Reads the unsubscribe mailbox at once, then `interval` seconds after each read ended,
    until stopped. One thread, so two reads never overlap; its own, so a read
    waiting on a slow IMAP server never holds up the daemon's tick."""

    def __init__(self, ws: Workspace, interval: float) -> None:
        super().__init__(name="unsubscribe mailbox", daemon=True)
        self.ws, self.interval = ws, interval
        self.stopped = threading.Event()
        #: reads finished (successful or failed): shows whether one is still under way
        self.reads = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            read_unsubscribes(self.ws)  # logs its own failures, never raises an Exception
            self.reads += 1
            self.stopped.wait(self.interval)

    def stop(self, *, wait_s: float = MAILBOX_STOP_WAIT_S) -> None:
        """Ask the loop to end and wait a little for a read in progress. One still waiting on
        the server is left behind (the thread is a daemon thread, gone with the process):
        nothing is lost, as a message is marked only after the database committed its
        suppression, so the next daemon's read handles whatever this one did not finish."""
        self.stopped.set()
        self.join(timeout=wait_s)
        if self.is_alive():
            mailbox = self.ws.settings.unsubscribe_mailbox
            log.warning(
                "event=mailbox.abandoned mailbox=%s reason=%r",
                mailbox.display if mailbox else "-",
                "a read was still waiting on the IMAP server at stop; the next read redoes it",
            )


@contextmanager
def reading_mailbox(ws: Workspace) -> Iterator[MailboxReader | None]:
    """Read the unsubscribe mailbox in the background for the duration of the block (None:
    no mailbox configured); the reader is stopped after."""
    if ws.settings.unsubscribe_mailbox is None:
        yield None
        return
    reader = MailboxReader(ws, ws.settings.unsubscribe_imap_interval_s)
    reader.start()
    try:
        yield reader
    finally:
        reader.stop()


class Heartbeat(threading.Thread):
    """Writes the daemon's heartbeat until stopped; prunes daemons long silent."""

    def __init__(self, ws: Workspace, daemon_id: str, *, http: str | None = None) -> None:
        super().__init__(name=f"heartbeat {daemon_id}", daemon=True)
        self.ws, self.daemon_id, self.http = ws, daemon_id, http
        self.stopped = threading.Event()
        #: set when the heartbeat could not be written (the daemon then stops)
        self.failed: BaseException | None = None

    def beat(self) -> None:
        schedules.beat_daemon(self.ws, self.daemon_id, http=self.http)

    def run(self) -> None:
        while not self.stopped.wait(DAEMON_HEARTBEAT_S):
            try:
                self.beat()
            except sa.exc.OperationalError as exc:  # locked or unreachable: try again, say so
                log.warning("event=heartbeat.failed reason=%r", str(exc.orig).splitlines()[0])


@contextmanager
def registered(ws: Workspace, daemon_id: str, *, http: str | None = None) -> Iterator[Heartbeat]:
    """Register the daemon and heartbeat it for the duration of the block; unregister after."""
    schedules.register_daemon(ws, daemon_id, http=http)
    beat = Heartbeat(ws, daemon_id, http=http)
    beat.start()
    event("daemon.started", daemon=daemon_id, http=http or "-")
    try:
        yield beat
    finally:
        beat.stopped.set()
        beat.join(timeout=DAEMON_HEARTBEAT_S * 2)
        schedules.unregister_daemon(ws, daemon_id)
        event("daemon.stopped", daemon=daemon_id)


def health(ws: Workspace) -> tuple[bool, str]:
    """Whether some daemon has a fresh heartbeat, and a line saying so (for `--health`)."""
    status = schedules.daemon_status(ws)
    return status.healthy, str(status)
