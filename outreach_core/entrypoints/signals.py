"""SIGINT/SIGTERM ask an executor to stop after the sends under way.

A daemon also arms a watchdog (`hard_exit_after`): if the process is still running that many
seconds after the signal (a send or a database call that does not return), it logs
`event=daemon.forced_exit` with where the main thread was, and exits at once. Its run is left
as it was, for take-over: what it had in flight becomes `unknown`, never resent. A kernel alarm
a second later ends the process even if Python itself could not run the watchdog.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from outreach_core.services.sending import StopSignal

log = logging.getLogger("outreach.signals")

#: seconds a daemon may take to stop after SIGTERM before the watchdog ends it (under 10)
STOP_GRACE_S = 8.0
#: the exit code of a process the watchdog ended
FORCED_EXIT_CODE = 3


def _main_thread_at() -> str:
    """Where the main thread is: its innermost frames as `file:line` (no values)."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    if frame is None:
        return "-"
    stack = traceback.extract_stack(frame)[-3:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stack))


def _exit_hard(grace_s: float) -> None:
    log.error(
        "event=daemon.forced_exit after_s=%g at=%r reason=%r",
        grace_s,
        _main_thread_at(),
        "still running after the stop signal; its run is left for take-over",
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(FORCED_EXIT_CODE)


def arm_watchdog(grace_s: float) -> threading.Timer:
    """End the process `grace_s` seconds from now, whatever it is doing.

    A timer thread does it with a log line; SIGALRM (default action: terminate) a second later
    covers a main thread stuck in one long C call, which never lets that thread run.
    """
    timer = threading.Timer(grace_s, _exit_hard, args=(grace_s,))
    timer.name, timer.daemon = "stop watchdog", True
    timer.start()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(grace_s) + 1)
    return timer


@contextmanager
def stop_on_signals(
    stop: StopSignal, *, hard_exit_after: float | None = None
) -> Iterator[StopSignal]:
    """Within the block, the first SIGINT/SIGTERM sets `stop`; a second one interrupts at once.
    With `hard_exit_after`, the first one also arms the watchdog (`arm_watchdog`).

    The previous handlers are restored on exit.
    """

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info(
            "%s received: finishing the sends under way, then stopping",
            signal.Signals(signum).name,
        )
        stop.set()
        if hard_exit_after is not None:
            arm_watchdog(hard_exit_after)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
