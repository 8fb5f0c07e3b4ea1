"""The commands that send: `send` a file, `resume` or `retry` a run, and list the `runs`.

A send prints `run: N` first (scripts read it), then sends in this process until the run
ends or a signal stops it; `--queue` leaves the sending to the daemon.
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from outreach_core import services
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import RenderErrorPolicy, SendOptions
from outreach_core.domain.states import RunStatus
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


def cmd_send(ws: Workspace, args: argparse.Namespace) -> int:
    send = file_sends.read_file_send(args.input, args.template, args.engine, args.sender)
    try:
        options = SendOptions(
            rate=args.rate,
            burst=args.burst,
            concurrency=args.concurrency,
            skip_mx=args.skip_mx,
            on_render_error=RenderErrorPolicy(args.on_render_error),
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
    if summary.run.status in (RunStatus.SENDING, RunStatus.PAUSED):
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


def cmd_runs(ws: Workspace, args: argparse.Namespace) -> int:
    summaries = services.recent_runs(ws, limit=args.limit)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2))
        return EXIT_OK
    print(
        f"{'run':>5}  {'status':<12} {'created (UTC)':<19}  {'sent':>6} {'failed':>6} {'skipped':>7}  workflow"
    )
    for s in summaries:
        print(
            f"{s.run.id:>5}  {s.run.status:<12} {s.run.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{s.counts.sent:>6} {s.counts.failed + s.counts.deferred + s.counts.unknown:>6} "
            f"{s.counts.skipped:>7}  {s.workflow_name}"
        )
    return EXIT_OK
