"""The Outreach worker: claims queued runs and sends them, on a `schedule` tick.

    python scheduler_daemon.py            run until SIGTERM / SIGINT
    python scheduler_daemon.py --once     process what is pending, then exit

On SIGTERM or SIGINT the current batch is finished, the run is released (resumable with
`python -m outreach_core resume RUN_ID` or by the next daemon), and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import sys

import schedule

from outreach_core import ConfigError, OutreachError
from outreach_core.executor import StopSignal, new_worker_id, work_once
from outreach_core.signals import stop_on_signals
from outreach_core.workspace import Workspace, start_process

log = logging.getLogger("outreach.daemon")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one pass over pending work, then exit")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between passes (default 2)"
    )
    return parser.parse_args(argv)


def tick(ws: Workspace, worker_id: str, stop: StopSignal) -> None:
    """One pass: orphaned runs first, then queued ones."""
    for run in work_once(ws, worker_id=worker_id, stop=stop):
        log.info("%s", run)


def serve(ws: Workspace, *, interval: float, stop: StopSignal) -> None:
    """Tick every `interval` seconds until asked to stop."""
    worker_id = new_worker_id()
    log.info("daemon %s started; polling every %gs", worker_id, interval)
    scheduler = schedule.Scheduler()
    scheduler.every(interval).seconds.do(tick, ws, worker_id, stop)
    tick(ws, worker_id, stop)
    while not stop.is_set():
        scheduler.run_pending()
        stop.event.wait(timeout=min(0.5, interval))
    log.info("daemon %s stopped", worker_id)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ws = start_process()
    except ConfigError as exc:
        print(f"outreach daemon: {exc}", file=sys.stderr)
        return 2
    stop = StopSignal()
    try:
        with stop_on_signals(stop):
            if args.once:
                tick(ws, new_worker_id(), stop)
            else:
                serve(ws, interval=args.interval, stop=stop)
    except OutreachError as exc:
        log.error("daemon stopped: %s", exc)
        return 1
    finally:
        ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
