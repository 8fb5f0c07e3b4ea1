"""`audience import FILE`: a contacts file stored as an audience, read and stored in chunks
(`services.audience_imports`), its progress printed as it goes and its counts at the end."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from outreach_core.adapters.contact_mapping import ImportChoices
from outreach_core.adapters.contact_stream import ReadProgress
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import SplitMode
from outreach_core.entrypoints.cli.common import EXIT_OK
from outreach_core.errors import InputError
from outreach_core.services import audience_imports
from outreach_core.services.audience_imports import FileOptions

#: the actor the audit log names for a command-line import
CLI_ACTOR = "cli"


def _printer(what: str) -> Callable[[ReadProgress], None]:
    """Progress on stderr: rewritten in place on a terminal, one line per 10 % otherwise."""
    shown = {"step": -1}

    def show(progress: ReadProgress) -> None:
        if sys.stderr.isatty():
            print(f"\r{what}: {progress.line()}", end="", file=sys.stderr, flush=True)
            return
        step = int(progress.fraction * 10)
        if step > shown["step"]:
            shown["step"] = step
            print(f"{what}: {progress.line()}", file=sys.stderr, flush=True)

    return show


def _end_line() -> None:
    if sys.stderr.isatty():
        print(file=sys.stderr)


def cmd_audience(ws: Workspace, args: argparse.Namespace) -> int:
    """`audience import FILE [--name N] [--email-column C] [--sheet S] [--multi-address M]`."""
    path = args.input
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    name = (args.name or path.stem).strip()
    if not name:
        raise InputError("an audience needs a name; give --name")
    choices = None
    if args.email_column:
        choices = ImportChoices(args.email_column, split=SplitMode(args.multi_address))
    with path.open("rb") as file:
        if choices is None:
            # the column the headers name, found when the file is opened
            stream_options = FileOptions(path.name, sheet=args.sheet)
            opened = audience_imports.open_stream(file, stream_options)
            choices = ImportChoices(opened.email_column, split=SplitMode(args.multi_address))
        options = FileOptions(path.name, sheet=args.sheet, choices=choices)
        scan = audience_imports.scan_file(
            file,
            options,
            test_environment=ws.settings.test_environment,
            progress=_printer("reading"),
        )
        _end_line()
        for note in scan.notes:
            print(f"note: {note}", file=sys.stderr)
        result = audience_imports.import_file(
            ws,
            file,
            options,
            name=name,
            actor=CLI_ACTOR,
            scan=scan,
            progress=_printer("importing"),
        )
        _end_line()
    audience = result.audience
    print(
        f"imported audience {audience.name!r} (id {audience.id}): {scan.rows} rows, "
        f"{scan.accepted} to send to, {scan.rejected} rejected, {scan.duplicates} duplicates"
    )
    return EXIT_OK
