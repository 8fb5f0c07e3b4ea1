"""`python -m outreach_core …` (or `outreach …`): send a file, resume or retry, list and export
runs, check files and workflows, manage the database and the keys.

`main` parses the command line (`parser`), opens the workspace and hands the arguments to the
command: the sending ones in `sending`, the checks in `checks`, the maintenance in `admin`,
SQL sources in `sources`.
Exit codes (`common.exit_code`): 0 every deliverable recipient was sent; 1 some failed, were
deferred, are unknown, or the run did not finish; 2 unusable input or settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from outreach_core.adapters.workspace import Workspace, start_process
from outreach_core.entrypoints.cli import (
    admin,
    audiences,
    checks,
    mailboxes,
    sending,
    sources,
    steps,
)
from outreach_core.entrypoints.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_USAGE,
    exit_code,
)
from outreach_core.entrypoints.cli.parser import build_parser
from outreach_core.errors import ConfigError, InputError, NotFound, OutreachError, RunBusy

__all__ = ["EXIT_INCOMPLETE", "EXIT_OK", "EXIT_USAGE", "build_parser", "exit_code", "main"]

Command = Callable[[Workspace, argparse.Namespace], int]

#: the command that runs each subcommand (all but `hash-password`, which needs no workspace)
COMMANDS: dict[str, Command] = {
    "send": sending.cmd_send,
    "resume": sending.cmd_resume,
    "retry": sending.cmd_retry,
    "runs": sending.cmd_runs,
    "export": admin.cmd_export,
    "validate": checks.cmd_validate,
    "dry-run": checks.cmd_dry_run,
    "template": admin.cmd_template,
    "read-unsubscribes": admin.cmd_read_unsubscribes,
    "engine-mailbox": mailboxes.cmd_engine_mailbox,
    "read-feedback": mailboxes.cmd_read_feedback,
    "check-mailbox": mailboxes.cmd_check_mailbox,
    "db": admin.cmd_db,
    "rotate-key": admin.cmd_rotate_key,
    "demo": admin.cmd_demo,
    "source": sources.cmd_source,
    "audience": audiences.cmd_audience,
    "workflow-step": steps.cmd_workflow_step,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command line (default: `sys.argv[1:]`); returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "hash-password":  # needs no workspace
        return admin.cmd_hash_password(args)
    try:
        ws = start_process()
    except ConfigError as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](ws, args)
    except (InputError, NotFound, RunBusy, ConfigError) as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutreachError as exc:
        print(f"outreach: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    finally:
        ws.close()
