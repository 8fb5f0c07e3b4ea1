"""The Outreach scheduler daemon: runs due schedules and queued runs, on a `schedule` tick.

    python scheduler_daemon.py                         run until SIGTERM / SIGINT
    python scheduler_daemon.py --once                  one pass over what is due, then exit
    python scheduler_daemon.py --health                exit 0 only if a daemon heartbeat is fresh
    python scheduler_daemon.py --http 127.0.0.1:8080   also serve the HTTP API

With OUTREACH_UNSUBSCRIBE_IMAP_URL set, the mailbox of the List-Unsubscribe mailto is read every
OUTREACH_UNSUBSCRIBE_IMAP_INTERVAL_S seconds (default 300) in a thread of its own, so a slow IMAP
server never delays sending; --once reads it once, after its pass. Likewise the mailboxes the
SMTP engines name (bounces, complaints, replies) are read every
OUTREACH_FEEDBACK_MAILBOX_INTERVAL_S seconds (default 300) in another thread.

On SIGTERM or SIGINT the sends under way are finished, the run is released (resumable with
`python -m outreach_core resume RUN_ID` or by the next daemon), and the process exits 0. A
daemon still running STOP_GRACE_S (8 s) after the signal (a send or a database call that does
not return) logs `event=daemon.forced_exit` and exits 3 at once: it always stops within 10 s,
its run left for take-over. No template can keep it busy: a render is bounded in size, loop
steps and time (`outreach_core/domain/template_limits.py`).

`--health` reads the heartbeats the daemons' heartbeat threads write: it says that a daemon
process is alive and reaches the database, not that its loop is making progress (a loop busy
for hours with a large run is healthy). What could hold the loop is bounded instead: renders
by the limits above, sends by the engines' timeouts, and a stop by the watchdog.
Several daemons may share one PostgreSQL database (or one SQLite file): each due schedule runs
once, and the deliveries of a large run are split between them by batch claims.
"""

from __future__ import annotations

import argparse
import logging
import sys

import schedule

from outreach_core import ConfigError, InputError, OutreachError
from outreach_core.adapters.workspace import Workspace, start_process
from outreach_core.entrypoints.daemon import (
    health,
    read_unsubscribes,
    reading_mailbox,
    registered,
    tick,
)
from outreach_core.entrypoints.feedback_reader import read_feedback, reading_feedback
from outreach_core.entrypoints.http_api import HttpServer, create_app, parse_listen
from outreach_core.entrypoints.signals import STOP_GRACE_S, stop_on_signals
from outreach_core.services.sending import StopSignal, new_worker_id

log = logging.getLogger("outreach.daemon")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="one pass over pending work, then exit")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between passes (default 2)"
    )
    parser.add_argument(
        "--health",
        action="store_true",
        help="exit 0 if some daemon's heartbeat is fresh, 1 otherwise (for probes)",
    )
    parser.add_argument(
        "--http", metavar="HOST:PORT", help="serve the HTTP API here (default: no HTTP)"
    )
    return parser.parse_args(argv)


def serve(ws: Workspace, *, interval: float, stop: StopSignal, worker_id: str) -> None:
    """Tick every `interval` seconds until asked to stop; meanwhile another thread reads the
    unsubscribe mailbox (when one is configured) at its own, slower interval."""
    scheduler = schedule.Scheduler()
    scheduler.every(interval).seconds.do(tick, ws, worker_id, stop)
    with reading_mailbox(ws), reading_feedback(ws, worker_id):
        tick(ws, worker_id, stop)
        while not stop.is_set():
            scheduler.run_pending()
            stop.event.wait(timeout=min(0.5, interval))


def run(ws: Workspace, args: argparse.Namespace) -> None:
    """Register, optionally serve HTTP, tick (once or until stopped), unregister."""
    worker_id = new_worker_id()
    stop = StopSignal()
    http = None
    if args.http:
        host, port = parse_listen(args.http)
        token = ws.settings.api_token.get_secret_value() if ws.settings.api_token else None
        http = HttpServer(create_app(ws, api_token=token), host, port).start()
    try:
        with (
            stop_on_signals(stop, hard_exit_after=STOP_GRACE_S),
            registered(ws, worker_id, http=args.http),
        ):
            if args.once:
                # the pass first: the mailbox read may wait on a slow server, sending must not
                tick(ws, worker_id, stop)
                if not stop.is_set():
                    read_unsubscribes(ws)
                if not stop.is_set():
                    read_feedback(ws, worker_id)
            else:
                serve(ws, interval=args.interval, stop=stop, worker_id=worker_id)
    finally:
        if http:
            http.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.http:
            parse_listen(args.http)
        ws = start_process()
    except (ConfigError, InputError) as exc:
        print(f"outreach daemon: {exc}", file=sys.stderr)
        return 2
    try:
        if args.health:
            ok, line = health(ws)
            print(line)
            return 0 if ok else 1
        run(ws, args)
    except ConfigError as exc:
        print(f"outreach daemon: {exc}", file=sys.stderr)
        return 2
    except OutreachError as exc:
        log.error("daemon stopped: %s", exc)
        return 1
    finally:
        ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
