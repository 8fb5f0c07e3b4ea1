"""Engine mailboxes on the command line: name or clear one (`engine-mailbox`), read them all
once (`read-feedback`), check one (`check-mailbox`).

A mailbox URL holds a password, so it is read from standard input (`--url-stdin`) or from an
environment variable (`--url-env VAR`), never from the command line where `ps` and shell
history would show it; only its masked form is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from typing import Any

from outreach_core.adapters.workspace import Workspace
from outreach_core.entrypoints.cli.common import EXIT_INCOMPLETE, EXIT_OK
from outreach_core.errors import InputError
from outreach_core.services import feedback_mailboxes
from outreach_core.services.sending import new_worker_id


def add_parsers(commands: Any) -> None:
    """The three commands' grammar (`commands` is the parser's subparsers object)."""
    mailbox = commands.add_parser(
        "engine-mailbox",
        help="name the IMAP mailbox an SMTP engine's bounces, complaints and replies arrive in "
        "(imaps://user:password@host:993/INBOX), or clear it",
    )
    mailbox.add_argument("name", help="the engine's name")
    source = mailbox.add_mutually_exclusive_group(required=True)
    source.add_argument("--url-stdin", action="store_true", help="read the URL from standard input")
    source.add_argument("--url-env", metavar="VAR", help="read the URL from this variable")
    source.add_argument("--clear", action="store_true", help="stop reading the mailbox")
    commands.add_parser(
        "read-feedback",
        help="read every engine mailbox once now: record bounces, complaints, auto-replies and "
        "replies on their deliveries, suppress hard bounces; prints the counts per kind",
    )
    check = commands.add_parser(
        "check-mailbox",
        help="log in to an engine's mailbox and count its messages, changing nothing",
    )
    check.add_argument("name", help="the engine's name")


def _url(args: argparse.Namespace) -> str:
    if args.url_stdin:
        url = sys.stdin.readline().strip()
    else:
        url = os.environ.get(args.url_env, "").strip()
    if not url:
        where = "standard input" if args.url_stdin else f"${args.url_env}"
        raise InputError(f"no mailbox URL in {where}")
    return url


def cmd_engine_mailbox(ws: Workspace, args: argparse.Namespace) -> int:
    engine_id = feedback_mailboxes.engine_id_by_name(ws, args.name)
    if args.clear:
        feedback_mailboxes.clear_engine_mailbox(ws, engine_id, actor="cli")
        print(f"engine {args.name}: mailbox cleared")
        return EXIT_OK
    shown = feedback_mailboxes.set_engine_mailbox(ws, engine_id, _url(args), actor="cli")
    print(f"engine {args.name}: mailbox {shown}")
    return EXIT_OK


def cmd_read_feedback(ws: Workspace, args: argparse.Namespace) -> int:
    reports = feedback_mailboxes.read_all(ws, holder=new_worker_id())
    if not reports:
        print("no engine names a mailbox")
    total: Counter[str] = Counter()
    for report in reports:
        print(report)
        total.update(report.counts)
    if len(reports) > 1:
        print("all: " + (", ".join(f"{k} {n}" for k, n in sorted(total.items())) or "nothing"))
    return EXIT_INCOMPLETE if any(r.error for r in reports) else EXIT_OK


def cmd_check_mailbox(ws: Workspace, args: argparse.Namespace) -> int:
    engine_id = feedback_mailboxes.engine_id_by_name(ws, args.name)
    print(feedback_mailboxes.check_mailbox(ws, engine_id))
    return EXIT_OK
