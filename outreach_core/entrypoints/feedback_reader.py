"""The daemon's reader of the engines' own mailboxes (bounces, complaints, replies).

Every OUTREACH_FEEDBACK_MAILBOX_INTERVAL_S seconds it makes one pass over every engine that
names a mailbox (`services.feedback_mailboxes.read_all`), in a thread of its own: an IMAP server
that is slow or gone (each reply may take `imap_mailbox.IMAP_TIMEOUT_S`) never delays the
daemon's tick, which sends. The mailboxes are found in the database at every pass, so one named
on the Engines page is read without restarting the daemon. Nothing escapes the loop: a
mailbox's failure is recorded on its state (Home and the Engines page show it), anything else
is logged, and the next pass tries again.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from outreach_core.adapters.workspace import Workspace
from outreach_core.services import feedback_mailboxes

log = logging.getLogger("outreach.daemon")

#: seconds a stopping daemon waits for a pass in progress before leaving it behind
STOP_WAIT_S = 5.0


def read_feedback(ws: Workspace, holder: str) -> list[feedback_mailboxes.PassReport]:
    """One pass over every engine mailbox; never raises an Exception (logged instead)."""
    try:
        return feedback_mailboxes.read_all(ws, holder=holder)
    except Exception as exc:  # the database gone, or a bug: name where, never the message
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "event=feedback.failed error=%s at=%s:%s retry=next_read",
            type(exc).__name__,
            where.filename.rsplit("/", 1)[-1],
            where.lineno,
        )
        return []


class FeedbackReader(threading.Thread):
    """Reads the engine mailboxes at once, then `interval` seconds after each pass ended, until
    stopped. One thread, so two passes of this daemon never overlap (other daemons are kept
    off a mailbox by its lease)."""

    def __init__(self, ws: Workspace, holder: str, interval: float) -> None:
        super().__init__(name="engine mailboxes", daemon=True)
        self.ws, self.holder, self.interval = ws, holder, interval
        self.stopped = threading.Event()
        #: passes finished: shows whether one is still under way
        self.passes = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            read_feedback(self.ws, self.holder)
            self.passes += 1
            self.stopped.wait(self.interval)

    def stop(self, *, wait_s: float = STOP_WAIT_S) -> None:
        """Ask the loop to end and wait a little for a pass in progress. One still waiting on
        a server is left behind (a daemon thread, gone with the process): each message's
        events and the high-water mark commit together, so the next pass redoes only the
        message under way, and its claim runs out by itself."""
        self.stopped.set()
        self.join(timeout=wait_s)
        if self.is_alive():
            log.warning(
                "event=feedback.abandoned reason=%r",
                "a pass was still waiting on an IMAP server at stop; the next pass redoes it",
            )


@contextmanager
def reading_feedback(ws: Workspace, holder: str) -> Iterator[FeedbackReader]:
    """Read the engine mailboxes in the background for the duration of the block."""
    reader = FeedbackReader(ws, holder, ws.settings.feedback_mailbox_interval_s)
    reader.start()
    try:
        yield reader
    finally:
        reader.stop()
