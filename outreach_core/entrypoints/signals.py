"""SIGINT/SIGTERM ask an executor to stop after its current batch."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from outreach_core.services.sending import StopSignal

log = logging.getLogger("outreach.signals")


@contextmanager
def stop_on_signals(stop: StopSignal) -> Iterator[StopSignal]:
    """Within the block, the first SIGINT/SIGTERM sets `stop`; a second one interrupts at once.

    The previous handlers are restored on exit.
    """

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info(
            "%s received: finishing the current batch, then stopping", signal.Signals(signum).name
        )
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
