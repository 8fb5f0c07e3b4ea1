"""`python -m outreach_core …`: send a file, resume or retry, list and export runs, manage the
database.

Exit codes (one place, `exit_code`): 0 every deliverable recipient was sent; 1 some failed,
were deferred, are unknown, or the run did not finish; 2 unusable input or settings.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path

from pydantic import ValidationError

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile, read_contacts_file
from outreach_core.adapters.senders import parse_engine_url
from outreach_core.adapters.store import db
from outreach_core.adapters.workspace import Workspace, start_process
from outreach_core.domain import access
from outreach_core.domain.message import header_safe
from outreach_core.domain.models import RenderErrorPolicy, RunSummary, SendOptions
from outreach_core.domain.planning import (
    RENDER_ABORT_PREFIX,
    SenderIdentity,
    plan_deliveries,
    render_abort_reason,
)
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.template_checks import content_warnings
from outreach_core.domain.template_tools import source_of
from outreach_core.domain.templating import CompiledTemplate, load_template_dir, write_template_dir
from outreach_core.domain.unsubscribe_checks import UnsubscribeFinding, unsubscribe_findings
from outreach_core.entrypoints.signals import stop_on_signals
from outreach_core.errors import ConfigError, InputError, NotFound, OutreachError, RunBusy
from outreach_core.services import (
    keys,
    preflight,
    run_summaries,
    sending,
    unsubscribe_mailbox,
)
from outreach_core.services.demo import load_demo

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2
ACTOR = "cli"
DEFAULTS = SendOptions()
DEFAULT_FROM = "Outreach <outreach@localhost.localdomain>"


def exit_code(summary: RunSummary) -> int:
    """0 when every deliverable recipient was sent; 2 when the run refused to start because
    rows do not render (on-render-error abort); else 1."""
    reason = summary.run.status_reason or ""
    if summary.run.status is RunStatus.FAILED and reason.startswith(RENDER_ABORT_PREFIX):
        return EXIT_USAGE
    if summary.run.status is RunStatus.COMPLETED and summary.counts.unsettled == 0:
        return EXIT_OK
    return EXIT_INCOMPLETE


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m outreach_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser("send", help="send a template to every row of a CSV file")
    send.add_argument("input", type=Path, help="contacts CSV; its columns are template variables")
    send.add_argument(
        "--template", type=Path, required=True, help="folder with subject.txt, body.html/body.txt"
    )
    send.add_argument(
        "--engine",
        required=True,
        help="outbox:///folder, smtp://user:pass@host:587?tls=starttls|ssl|none, smtps://…",
    )
    send.add_argument(
        "--from",
        dest="sender",
        default=None,
        help=f'"Name <address>" to send as (default: the SMTP user, else "{DEFAULT_FROM}")',
    )
    send.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULTS.rate,
        help=f"messages per second, 0 = unlimited (default {DEFAULTS.rate:g})",
    )
    send.add_argument(
        "--burst",
        type=_positive_int,
        default=DEFAULTS.burst,
        help=f"messages allowed at once (default {DEFAULTS.burst})",
    )
    send.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULTS.concurrency,
        help=f"simultaneous sends (default {DEFAULTS.concurrency})",
    )
    send.add_argument(
        "--skip-mx", action="store_true", help="do not look up the recipients' mail servers"
    )
    send.add_argument(
        "--on-render-error",
        choices=[policy.value for policy in RenderErrorPolicy],
        default=DEFAULTS.on_render_error,
        help="rows whose template does not render: skip them and send the rest, or abort "
        f"the send (nothing is sent, exit 2) (default {DEFAULTS.on_render_error})",
    )
    send.add_argument(
        "--unsubscribe-url",
        default=None,
        help="base address for {{ unsubscribe_url }}; each recipient gets it plus "
        "?email=…&token=… (an HMAC of the address with the workspace's secret key)",
    )
    send.add_argument("--dry-run", action="store_true", help="check and render, send nothing")
    send.add_argument(
        "--queue", action="store_true", help="only queue the run; the daemon will send it"
    )

    resume = commands.add_parser("resume", help="continue an interrupted or paused run")
    resume.add_argument("run_id", type=int)

    retry = commands.add_parser(
        "retry",
        help="send a finished or paused run's deferred deliveries again (and, when asked, "
        "its unknown ones)",
    )
    retry.add_argument("run_id", type=int)
    retry.add_argument(
        "--include-unknown",
        action="store_true",
        help="also resend deliveries whose outcome is unknown: they may have been delivered, "
        "so a recipient may get the message twice (default: off)",
    )
    retry.add_argument(
        "--queue", action="store_true", help="only re-queue the run; the daemon will send it"
    )

    runs = commands.add_parser("runs", help="list the latest runs")
    runs.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    runs.add_argument("--limit", type=_positive_int, default=20)

    export = commands.add_parser("export", help="write a run's per-recipient outcome as CSV")
    export.add_argument("run_id", type=int)
    export.add_argument("--out", type=Path, required=True)

    validate = commands.add_parser(
        "validate", help="check every address of a CSV/XLSX file (syntax, duplicates, DNS)"
    )
    validate.add_argument("input", type=Path, help="contacts CSV or XLSX")
    validate.add_argument(
        "--email-column", default=None, help="the email column (default: detected)"
    )
    validate.add_argument("--sheet", default=None, help="XLSX sheet name (default: the first)")
    validate.add_argument("--out", type=Path, required=True, help="result CSV to write")
    validate.add_argument("--skip-mx", action="store_true", help="check syntax only, no DNS")

    dry_run = commands.add_parser(
        "dry-run", help="the pre-flight of a workflow (audience + template + engine); sends nothing"
    )
    dry_run.add_argument("workflow", help="workflow name or id")
    dry_run.add_argument("--out", type=Path, required=True, help="result CSV to write")
    dry_run.add_argument("--skip-mx", action="store_true", help="check syntax only, no DNS")
    template = commands.add_parser("template", help="import or export a template folder")
    template_actions = template.add_subparsers(dest="action", required=True)
    imports = template_actions.add_parser(
        "import", help="save a folder (subject.txt, body.html, body.txt) as a new version"
    )
    imports.add_argument("folder", type=Path)
    imports.add_argument("--name", help="template name (default: the folder's name)")
    exports = template_actions.add_parser("export", help="write a template's newest version")
    exports.add_argument("name")
    exports.add_argument("--out", type=Path, required=True, help="folder to write into")

    database = commands.add_parser("db", help="database maintenance")
    database.add_argument("action", choices=["upgrade"], help="apply pending migrations")

    commands.add_parser("demo", help="load the demo workspace unless it is there already")

    commands.add_parser(
        "read-unsubscribes",
        help="read the unsubscribe mailbox once (OUTREACH_UNSUBSCRIBE_IMAP_URL): suppress each "
        "sender whose request carries their own token, flag the other messages for a human",
    )

    hashing = commands.add_parser(
        "hash-password",
        help="print a password hash for OUTREACH_DASHBOARD_USERS (reads the password, no echo)",
    )
    hashing.add_argument("--scheme", choices=["argon2", "scrypt"], default="argon2")
    commands.add_parser(
        "rotate-key",
        help="re-encrypt every stored secret with a new key (OUTREACH_NEW_SECRET_KEY when the "
        "key comes from OUTREACH_SECRET_KEY; otherwise the key file is replaced)",
    )
    return parser


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Read a password (twice on a terminal, one line from a pipe) and print its hash."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("outreach: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("outreach: the password is empty", file=sys.stderr)
        return EXIT_USAGE
    print(access.hash_password(password, scheme=args.scheme))
    return EXIT_OK


def _sender_for(text: str | None, engine_user: str | None) -> SenderIdentity:
    if text is None:
        text = engine_user if engine_user and "@" in engine_user else DEFAULT_FROM
    if header_safe(text) != text.strip():
        raise InputError("--from: control characters (line breaks) are not allowed")
    name, address = parseaddr(text)
    if not address or "@" not in address:
        raise InputError(f'--from {text!r}: give an address, e.g. "Team <team@example.com>"')
    return SenderIdentity(email=address, name=name)


def _print_findings(findings: list[UnsubscribeFinding], *, to_stderr: bool = False) -> None:
    """One `unsubscribe warning: …` / `unsubscribe info: …` line per finding; never stops a send."""
    for finding in findings:
        print(f"unsubscribe {finding}", file=sys.stderr if to_stderr else sys.stdout)


def _print_summary(summary: RunSummary) -> None:
    print(f"{summary.run}")
    print(f"summary: {summary.counts}")


def _dry_run(
    ws: Workspace,
    parsed: ParsedFile,
    template: CompiledTemplate,
    sender: SenderIdentity,
    policy: RenderErrorPolicy,
    *,
    unsubscribe: Callable[[str], str] | None,
    findings: list[UnsubscribeFinding],
    skip_mx: bool,
) -> int:
    """Pre-flight: render every row, print the summary, the warnings and each row not sent.

    Exits 2 when a send with the same options would abort on rows that do not render.
    """
    parsed_rows, email_column = parsed.rows, parsed.email_column
    print("run: dry-run", flush=True)
    emails = [str(row.get(email_column) or "") for row in parsed_rows]
    domains = None if skip_mx else preflight.check_emails(ws, emails).domains
    plan = list(
        plan_deliveries(
            enumerate(parsed_rows, start=1),
            email_column=email_column,
            template=template,
            sender=sender,
            run_date=datetime.now(UTC),
            domains=domains,
            unsubscribe=unsubscribe,
        )
    )
    sendable = sum(p.status is DeliveryStatus.PENDING for p in plan)
    print(f"dry run: {len(plan)} rows, {sendable} would be sent, {len(plan) - sendable} would not")
    columns = sorted(template.column_variables)
    print(f"variables: {', '.join(columns) or '(none)'}")
    missing = template.missing_columns(parsed.columns)
    if missing:
        print(f"missing columns: {', '.join(missing)} (every row without them fails to render)")
    for warning in content_warnings(template.source):
        print(f"warning: {warning}")
    _print_findings(findings)
    abort = render_abort_reason(plan, policy)
    if abort:
        print("on-render-error abort: a send would not start; the rows below do not render")
    for p in plan:
        if p.status is not DeliveryStatus.PENDING:
            print(f"row {p.row_number}\t{p.reason_word}\t{p.email or '-'}\t{p.reason}")
    return EXIT_USAGE if abort else EXIT_OK


def cmd_send(ws: Workspace, args: argparse.Namespace) -> int:
    parsed = read_contacts_file(args.input)
    source = load_template_dir(args.template)
    template = CompiledTemplate(source)
    engine_url = parse_engine_url(args.engine)
    sender = _sender_for(args.sender, engine_url.username)
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
        raise InputError(f"--unsubscribe-url: {exc.errors()[0]['msg']}") from None
    findings = unsubscribe_findings(
        options, source, mailbox_configured=ws.settings.unsubscribe_imap_url is not None
    )
    if args.dry_run:
        return _dry_run(
            ws,
            parsed,
            template,
            sender,
            options.on_render_error,
            unsubscribe=sending.unsubscribe_links(ws, options),
            findings=findings,
            skip_mx=args.skip_mx,
        )
    # stderr: stdout's first line is the run id, which scripts read
    _print_findings(findings, to_stderr=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    template_name = args.template.resolve().name
    workflow = services.setup_workflow(
        ws,
        name=f"{template_name} to {args.input.name} ({stamp})",
        parsed=parsed,
        template=source,
        engine_url=args.engine,
        from_email=sender.email,
        from_name=sender.name,
        options=options,
        actor=ACTOR,
        audience_name=f"{args.input.name} ({stamp})",
        template_name=template_name,
        engine_name=f"cli {engine_url.display}",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="cli", actor=ACTOR)
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
    _print_summary(summary)
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


class _ProgressLine:
    """`checked N/M` on stderr, rewritten in place, for lists long enough to wait for."""

    def __call__(self, done: int, total: int) -> None:
        if total >= 5_000 and sys.stderr.isatty():
            end = "\n" if done >= total else ""
            print(f"\rchecked {done}/{total}", end=end, file=sys.stderr, flush=True)


def _write_report(report: preflight.DryRunReport, out: Path) -> int:
    out.write_text(report.csv(), encoding="utf-8")
    counts = " ".join(f"{k}={v}" for k, v in report.counts().items() if v)
    print(f"{len(report.records)} rows: {counts or 'none'}")
    print(f"wrote {out}")
    return EXIT_OK


def cmd_validate(ws: Workspace, args: argparse.Namespace) -> int:
    parsed = read_contacts_file(args.input, email_column=args.email_column, sheet=args.sheet)
    for note in parsed.notes:
        print(f"note: {note}", file=sys.stderr)
    report = preflight.validate_file(ws, parsed, skip_mx=args.skip_mx, progress=_ProgressLine())
    return _write_report(report, args.out)


def cmd_dry_run(ws: Workspace, args: argparse.Namespace) -> int:
    workflow = services.find_workflow(ws, args.workflow)
    print(f"dry run of workflow {workflow.name!r}: nothing is sent", flush=True)
    _print_findings(services.workflow_unsubscribe_findings(ws, workflow.id))
    report = preflight.dry_run_workflow(
        ws, workflow.id, skip_mx=args.skip_mx, progress=_ProgressLine()
    )
    return _write_report(report, args.out)


def cmd_template(ws: Workspace, args: argparse.Namespace) -> int:
    if args.action == "import":
        name = args.name or args.folder.resolve().name
        saved = services.save_template(ws, name, load_template_dir(args.folder), actor=ACTOR)
        print(f"template {saved.name!r} is at version {saved.version}")
        return EXIT_OK
    current = services.find_template(ws, args.name)
    written = write_template_dir(source_of(current), args.out)
    files = ", ".join(path.name for path in written)
    print(f"wrote {current.name!r} version {current.version} to {args.out}: {files}")
    return EXIT_OK


def cmd_export(ws: Workspace, args: argparse.Namespace) -> int:
    written = run_summaries.export_run(ws, args.run_id, args.out)
    print(f"wrote {written} recipients to {args.out}")
    return EXIT_OK


def cmd_read_unsubscribes(ws: Workspace, args: argparse.Namespace) -> int:
    mailbox = ws.settings.unsubscribe_mailbox
    if mailbox is None:
        raise ConfigError(
            "OUTREACH_UNSUBSCRIBE_IMAP_URL is not set (e.g. imaps://user:password@host:993/INBOX)"
        )
    report = unsubscribe_mailbox.read_mailbox(ws, mailbox)
    for handled in report.handled:
        print(handled)
    print(report)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "hash-password":  # needs no workspace
        return cmd_hash_password(args)
    try:
        ws = start_process()
    except ConfigError as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "db":
            print(f"database at revision {db.current_revision(ws.db)}")
            return EXIT_OK
        if args.command == "rotate-key":
            rotation = keys.rotate_key(ws, new_key=ws.settings.new_secret_key, actor="cli")
            print(rotation)
            return EXIT_OK
        if args.command == "demo":
            loaded = load_demo(ws)
            print("demo workspace loaded" if loaded else "demo workspace already present")
            return EXIT_OK
        handler = {
            "send": cmd_send,
            "resume": cmd_resume,
            "retry": cmd_retry,
            "runs": cmd_runs,
            "export": cmd_export,
            "validate": cmd_validate,
            "dry-run": cmd_dry_run,
            "template": cmd_template,
            "read-unsubscribes": cmd_read_unsubscribes,
        }
        return handler[args.command](ws, args)
    except (InputError, NotFound, RunBusy, ConfigError) as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutreachError as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    finally:
        ws.close()
