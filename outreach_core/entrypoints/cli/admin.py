"""The maintenance commands: `db`, `demo`, `rotate-key`, `hash-password`, `template` import and
export, `export` of a run's outcome, and one read of the unsubscribe mailbox."""

from __future__ import annotations

import argparse
import getpass
import sys

from outreach_core import services
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import access
from outreach_core.domain.template_tools import source_of
from outreach_core.domain.templating import load_template_dir, write_template_dir
from outreach_core.entrypoints.cli.common import ACTOR, EXIT_OK, EXIT_USAGE
from outreach_core.errors import ConfigError
from outreach_core.services import database, keys, run_summaries, unsubscribe_mailbox
from outreach_core.services.demo import load_demo


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


def cmd_db(ws: Workspace, args: argparse.Namespace) -> int:
    """`db upgrade`: opening the workspace applied the pending migrations; say where it is."""
    print(f"database at revision {database.schema_revision(ws)}")
    return EXIT_OK


def cmd_rotate_key(ws: Workspace, args: argparse.Namespace) -> int:
    rotation = keys.rotate_key(ws, new_key=ws.settings.new_secret_key, actor=ACTOR)
    print(rotation)
    return EXIT_OK


def cmd_demo(ws: Workspace, args: argparse.Namespace) -> int:
    loaded = load_demo(ws)
    print("demo workspace loaded" if loaded else "demo workspace already present")
    return EXIT_OK


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
