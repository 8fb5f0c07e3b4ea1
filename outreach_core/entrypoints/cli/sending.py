"""The commands that send: `send` a file, `resume` or `retry` a run, and list the `runs`.

A send prints `run: N` first (scripts read it), then sends in this process until the run
ends or a signal stops it; `--queue` leaves the sending to the daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from outreach_core import services
from outreach_core.adapters.url_secrets import secret_texts
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import SplitMode
from outreach_core.domain.models import RenderErrorPolicy, RunSummary, SendOptions
from outreach_core.domain.states import DnsWaitPolicy, RunStatus
from outreach_core.domain.unsubscribe_checks import unsubscribe_findings
from outreach_core.entrypoints.cli.checks import print_dry_run
from outreach_core.entrypoints.cli.common import (
    ACTOR,
    EXIT_OK,
    EXIT_USAGE,
    exit_code,
    print_findings,
    print_summary,
)
from outreach_core.entrypoints.signals import stop_on_signals
from outreach_core.errors import InputError
from outreach_core.services import file_sends, sending

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: `kind:` first: a URL given where the path of a file was expected
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: no engine URL is this long; a bigger first line is not one
_MAX_URL = 8192


def engine_url_of(ws: Workspace, args: argparse.Namespace) -> str:
    """The engine URL: `--engine`, else the variable `--engine-env` names, else the first line
    of `--engine-file`, else OUTREACH_ENGINE_URL. Errors never repeat a value that may be the
    URL itself (given where a name or path was expected)."""
    if args.engine is not None:
        url = str(args.engine).strip()
        if secret_texts(url):
            print(
                "outreach: warning: the secret in --engine can be read by every local user "
                "(ps); pass the URL with --engine-env VAR or --engine-file PATH instead",
                file=sys.stderr,
            )
        return url
    if args.engine_env is not None:
        name = args.engine_env
        if not _ENV_NAME.match(name):
            raise InputError(
                "--engine-env takes the NAME of an environment variable (e.g. "
                "--engine-env SMTP_URL after `export SMTP_URL=…`), not the URL"
            )
        value = os.environ.get(name, "").strip()
        if not value:
            raise InputError(f"--engine-env {name}: that variable is not set or is empty")
        return value
    if args.engine_file is not None:
        return _read_engine_file(args.engine_file)
    if ws.settings.engine_url is not None:
        return ws.settings.engine_url.get_secret_value().strip()
    raise InputError(
        "no engine given: use --engine-env VAR, --engine-file PATH or OUTREACH_ENGINE_URL "
        "(or --engine URL, which every local user can read in the process list)"
    )


def _read_engine_file(text: str) -> str:
    if _URL_LIKE.match(text):
        raise InputError("--engine-file takes the path of a file holding the URL, not the URL")
    path = Path(text)
    try:
        with path.open(encoding="utf-8") as handle:
            line = handle.readline(_MAX_URL).strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"--engine-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--engine-file {path}: cannot be read ({type(exc).__name__})") from None
    if not line:
        raise InputError(f"--engine-file {path}: the first line is empty; write the URL there")
    if mode & 0o077:
        print(
            f"outreach: warning: {path} can be read by other users; `chmod 600 {path}`",
            file=sys.stderr,
        )
    return line


def cmd_send(ws: Workspace, args: argparse.Namespace) -> int:
    engine_url = engine_url_of(ws, args)
    send = file_sends.read_file_send(
        args.input,
        args.template,
        engine_url,
        args.sender,
        multi_address=SplitMode(args.multi_address),
    )
    for note in send.parsed.notes:  # stderr: stdout's first line is the run id
        print(f"note: {note}", file=sys.stderr)
    try:
        options = SendOptions(
            rate=args.rate,
            burst=args.burst,
            concurrency=args.concurrency,
            retry_lifetime_hours=args.retry_hours,
            skip_mx=args.skip_mx,
            on_render_error=RenderErrorPolicy(args.on_render_error),
            dns_wait_hours=args.dns_wait_hours,
            on_dns_unanswered=DnsWaitPolicy(args.on_dns_unanswered),
            unsubscribe_base_url=args.unsubscribe_url,
        )
    except ValidationError as exc:
        raise InputError(
            "--unsubscribe-url: " + str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        ) from None
    findings = unsubscribe_findings(
        options, send.source, mailbox_configured=ws.settings.unsubscribe_imap_url is not None
    )
    if args.dry_run:
        print("run: dry-run", flush=True)
        dry_run = file_sends.dry_run_file_send(ws, send, options)
        return print_dry_run(send, dry_run, options.on_render_error, findings=findings)
    # stderr: stdout's first line is the run id, which scripts read
    print_findings(findings, to_stderr=True)
    run_id = file_sends.queue_file_send(ws, send, options, actor=ACTOR)
    print(f"run: {run_id}", flush=True)
    if args.queue:
        print(f"queued: the daemon will send run {run_id}")
        return EXIT_OK
    return _execute(ws, run_id)


def _execute(ws: Workspace, run_id: int) -> int:
    stop = sending.StopSignal()
    with stop_on_signals(stop):
        sending.run_to_end(ws, run_id, worker_id=sending.new_worker_id(), stop=stop)
    summary = services.run_summary(ws, run_id)
    print_summary(summary)
    if exit_code(summary) == EXIT_USAGE:
        print(f"outreach: {summary.run.status_reason}", file=sys.stderr)
    if summary.retries_waiting and summary.run.status is RunStatus.SENDING:
        print(
            f"not finished: {summary.retries_waiting} deferred deliveries wait for their retry "
            f"(next at {summary.next_retry_at:%Y-%m-%d %H:%M:%S} UTC); the daemon sends them",
            file=sys.stderr,
        )
    elif summary.run.status in (RunStatus.SENDING, RunStatus.PAUSED):
        print(
            f"not finished: continue with `python -m outreach_core resume {run_id}`",
            file=sys.stderr,
        )
    return exit_code(summary)


def cmd_resume(ws: Workspace, args: argparse.Namespace) -> int:
    print(f"run: {args.run_id}", flush=True)
    return _execute(ws, args.run_id)


def cmd_retry(ws: Workspace, args: argparse.Namespace) -> int:
    moved = services.retry_unsettled(
        ws, args.run_id, include_unknown=args.include_unknown, actor=ACTOR
    )
    print(f"run: {args.run_id}", flush=True)
    if not moved:
        summary = services.run_summary(ws, args.run_id)
        print(f"nothing to retry: {summary.counts}")
        if summary.counts.unknown and not args.include_unknown:
            print(
                f"{summary.counts.unknown} unknown deliveries may have been delivered; resend "
                f"them with `python -m outreach_core retry {args.run_id} --include-unknown`",
                file=sys.stderr,
            )
        return exit_code(summary)
    print(f"retry: {moved} deliveries back to pending")
    if args.queue:
        print(f"queued: the daemon will send run {args.run_id}")
        return EXIT_OK
    return _execute(ws, args.run_id)


def runs_line(s: RunSummary) -> str:
    """One run in `runs`: `failed` counts failed deliveries and deferred ones with no retry
    scheduled; unknown, pending (with sending: not finished) and the deferred that wait for a
    retry are columns of their own."""
    failed = s.counts.failed + max(s.counts.deferred - s.retries_waiting, 0)
    pending = s.counts.pending + s.counts.sending
    next_retry = f"{s.next_retry_at:%Y-%m-%d %H:%M:%S}" if s.next_retry_at else "-"
    return (
        f"{s.run.id:>5}  {s.run.status:<12} {s.run.created_at:%Y-%m-%d %H:%M:%S}  "
        f"{s.counts.sent:>6} {failed:>6} {s.counts.unknown:>7} {s.counts.skipped:>7} "
        f"{pending:>7} {s.retries_waiting:>7} {next_retry:<19} {s.counts.cancelled:>9}  "
        f"{s.workflow_name}"
    )


def cmd_runs(ws: Workspace, args: argparse.Namespace) -> int:
    summaries = services.recent_runs(ws, limit=args.limit)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2))
        return EXIT_OK
    # `unknown`: the outcome was not learnt (not failed); `pending`: not attempted yet (a
    # paused run's rest); `waiting`: deferred rows the daemon retries on their schedule
    print(
        f"{'run':>5}  {'status':<12} {'created (UTC)':<19}  {'sent':>6} {'failed':>6} "
        f"{'unknown':>7} {'skipped':>7} {'pending':>7} {'waiting':>7} "
        f"{'next retry (UTC)':<19} {'cancelled':>9}  workflow"
    )
    for summary in summaries:
        print(runs_line(summary))
    return EXIT_OK
