"""The command line's grammar: every command, its arguments, their defaults and help."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from outreach_core.domain.address_cells import SplitMode
from outreach_core.domain.models import RenderErrorPolicy, SendOptions
from outreach_core.domain.states import DnsWaitPolicy
from outreach_core.entrypoints.cli.mailboxes import add_parsers as add_mailbox_parsers
from outreach_core.services.file_sends import DEFAULT_FROM
from outreach_core.services.sources import DEFAULT_ROW_CAP, DEFAULT_TIMEOUT_S

#: the text `--help` shows above the commands
DESCRIPTION = """`python -m outreach_core …`: send a file, resume or retry, list and export runs, manage the
database.

Exit codes (one place, `exit_code`): 0 every deliverable recipient was sent; 1 some failed,
were deferred, are unknown, or the run did not finish; 2 unusable input or settings.
"""
DEFAULTS = SendOptions()
#: what `validate`, `dry-run` and `send` print under their options
ADDRESS_NOTE = """Statuses: valid, invalid_syntax, no_mx, null_mx, no_domain, mx_unresolvable (no MX host
has an address), private_address (the mail hosts' addresses are private, loopback or
reserved), dns_error (unknown: looked up again), duplicate, suppressed, render_error.
Addresses at the special-use domain `test` (`ann@staging.test`) are invalid_syntax unless
OUTREACH_TEST_ENVIRONMENT=true (staging only), which also sends to private_address domains,
flagged private_address; .local, .localhost and .invalid stay refused."""


def _positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _more_than_zero(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a number more than 0")
    return value


def _retry_hours(text: str) -> float:
    value = _positive_float(text)
    if value > 720:
        raise argparse.ArgumentTypeError("must be at most 720 (30 days)")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _multi_address(command: argparse.ArgumentParser) -> None:
    """`--multi-address first|each`, as the Audiences page's choice for such cells."""
    command.add_argument(
        "--multi-address",
        choices=[mode.value for mode in SplitMode],
        default=SplitMode.FIRST.value,
        help="an email cell holding several addresses (Google Contacts' `a@x.com ::: b@y.org`, "
        "or separated by ; or ,): keep its first address, or one row per address with the "
        "row's other values repeated; the whole cell is kept beside it, as the column "
        f"'<header> (all addresses)' (default {SplitMode.FIRST.value})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m outreach_core", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    send = commands.add_parser(
        "send", help="send a template to every row of a CSV file", epilog=ADDRESS_NOTE
    )
    send.add_argument("input", type=Path, help="contacts CSV; its columns are template variables")
    send.add_argument(
        "--template", type=Path, required=True, help="folder with subject.txt, body.html/body.txt"
    )
    _multi_address(send)
    engine = send.add_mutually_exclusive_group()
    engine.add_argument(
        "--engine-env",
        metavar="VAR",
        help="read the engine URL from this environment variable (keeps the password out "
        "of the process list)",
    )
    engine.add_argument(
        "--engine-file",
        metavar="PATH",  # kept a str: Path would fold a URL given by mistake into a path
        help="read the engine URL from the first line of this file (chmod 600 it)",
    )
    engine.add_argument(
        "--engine",
        metavar="URL",
        help="outbox:///folder, smtp://user:pass@host:587?tls=starttls|ssl|none (also "
        "timeout=S, cafile=/path/ca.pem), smtps://…; "
        "a password given here shows in `ps` to every local user: prefer --engine-env, "
        "--engine-file or OUTREACH_ENGINE_URL (the default when none of the three is given)",
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
        "--retry-hours",
        type=_retry_hours,
        default=DEFAULTS.retry_lifetime_hours,
        help="retry temporarily refused (4xx) mail on a schedule for this many hours, then fail "
        "it; the daemon sends the retries; 0 = no scheduled retries (use `retry RUN`) "
        f"(default {DEFAULTS.retry_lifetime_hours:g})",
    )
    send.add_argument(
        "--skip-mx", action="store_true", help="do not look up the recipients' mail servers"
    )
    send.add_argument(
        "--dns-wait-hours",
        type=_more_than_zero,
        default=DEFAULTS.dns_wait_hours,
        metavar="HOURS",
        help="rows whose domain DNS could not look up (timeout, server failure) wait, pending, "
        "and are looked up again; after this long --on-dns-unanswered decides "
        f"(default {DEFAULTS.dns_wait_hours:g})",
    )
    send.add_argument(
        "--on-dns-unanswered",
        choices=[policy.value for policy in DnsWaitPolicy],
        default=DEFAULTS.on_dns_unanswered,
        help="rows whose domain still has no DNS answer after --dns-wait-hours: keep waiting "
        "(the run stays paused, looking again every minute), send them anyway, or skip them "
        f"as dns_error (default {DEFAULTS.on_dns_unanswered})",
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
        "validate",
        help="check every address of a CSV/XLSX file (syntax, duplicates, DNS)",
        epilog=ADDRESS_NOTE,
    )
    validate.add_argument("input", type=Path, help="contacts CSV or XLSX")
    validate.add_argument(
        "--email-column", default=None, help="the email column (default: detected)"
    )
    validate.add_argument("--sheet", default=None, help="XLSX sheet name (default: the first)")
    _multi_address(validate)
    validate.add_argument("--out", type=Path, required=True, help="result CSV to write")
    validate.add_argument("--skip-mx", action="store_true", help="check syntax only, no DNS")

    dry_run = commands.add_parser(
        "dry-run",
        help="the pre-flight of a workflow (audience + template + engine); sends nothing",
        epilog=ADDRESS_NOTE,
    )
    dry_run.add_argument("workflow", help="workflow name or id")
    dry_run.add_argument("--out", type=Path, required=True, help="result CSV to write")
    dry_run.add_argument(
        "--skip-mx",
        action="store_true",
        help="skip the DNS check even if the workflow has it (default: the workflow's option; "
        "suppressions, the dedupe window and rendering are checked as a run checks them)",
    )
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

    audience = commands.add_parser("audience", help="audiences: import a contacts file")
    audience_actions = audience.add_subparsers(dest="action", required=True)
    audience_import = audience_actions.add_parser(
        "import",
        help="store a CSV/XLSX file as an audience (every row kept with its status), read and "
        "stored in chunks; prints the progress and the counts",
    )
    audience_import.add_argument("input", type=Path, help="contacts CSV or XLSX")
    audience_import.add_argument("--name", default=None, help="audience name (default: file name)")
    audience_import.add_argument(
        "--email-column", default=None, help="the email column (default: detected)"
    )
    audience_import.add_argument(
        "--sheet", default=None, help="XLSX sheet name (default: the first)"
    )
    _multi_address(audience_import)

    source = commands.add_parser("source", help="SQL sources: test a read-only query")
    source_actions = source.add_subparsers(dest="action", required=True)
    source_test = source_actions.add_parser(
        "test",
        help="run one read-only query (as the Audiences page's Test query does) and print its "
        "first rows, or why it was refused (exit 2)",
    )
    source_test.add_argument(
        "url",
        nargs="?",
        default=None,
        help="sqlite:///file.db or postgresql+psycopg://user@host:5432/db; with a password "
        "prefer --url-env or OUTREACH_SOURCE_URL (argv is visible to other local users)",
    )
    source_test.add_argument("query", help="one SELECT, WITH … SELECT or VALUES")
    source_test.add_argument(
        "--url-env",
        metavar="VAR",
        default=None,
        help="read the URL from this environment variable (default: OUTREACH_SOURCE_URL when "
        "no URL is given)",
    )
    source_test.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for :NAME in the query (repeatable)",
    )
    source_test.add_argument(
        "--rows", type=_positive_int, default=20, help="rows to print (default 20)"
    )
    source_test.add_argument(
        "--row-cap",
        type=_positive_int,
        default=DEFAULT_ROW_CAP,
        help=f"refuse a result with more rows than this (default {DEFAULT_ROW_CAP:,})",
    )
    source_test.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds the query may run (default {DEFAULT_TIMEOUT_S:g})",
    )

    _workflow_steps(commands)

    database = commands.add_parser("db", help="database maintenance")
    database.add_argument("action", choices=["upgrade"], help="apply pending migrations")

    commands.add_parser("demo", help="load the demo workspace unless it is there already")

    commands.add_parser(
        "read-unsubscribes",
        help="read the unsubscribe mailbox once (OUTREACH_UNSUBSCRIBE_IMAP_URL): suppress each "
        "sender whose request carries their own token, flag the other messages for a human",
    )

    add_mailbox_parsers(commands)

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


def _workflow_steps(commands: argparse._SubParsersAction) -> None:
    """`workflow-step add|list|remove`: a workflow's follow-up steps (2 to 5)."""
    steps = commands.add_parser(
        "workflow-step",
        help="a workflow's follow-up steps: step N+1 goes N days after step N to its recipients "
        "who have not replied, bounced, complained or unsubscribed",
    )
    actions = steps.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list the workflow's steps")
    listing.add_argument("workflow", help="workflow key or id")
    add = actions.add_parser("add", help="add a step after the workflow's last one")
    add.add_argument("workflow", help="workflow key or id")
    add.add_argument("--template", required=True, help="the step's template, by name or id")
    add.add_argument(
        "--days", type=_positive_int, required=True, help="days after the step before (1-365)"
    )
    add.add_argument(
        "--new-thread",
        action="store_true",
        help="send as a new message (default: continue the thread, `Re:` the step before)",
    )
    remove = actions.add_parser("remove", help="remove a step and the steps after it")
    remove.add_argument("workflow", help="workflow key or id")
    remove.add_argument("step", type=int, help="the step number (2-5)")
