"""`source test`: the command-line twin of the Audiences page's Test query button.

The URL comes from the command line, from `--url-env VAR`, or from `OUTREACH_SOURCE_URL`; the
last two keep a password out of the process list. The query goes through the same service
(`services.sources.try_query`) and so the same guards as the page; a refusal exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from outreach_core.adapters.workspace import Workspace
from outreach_core.entrypoints.cli.common import EXIT_OK
from outreach_core.errors import InputError
from outreach_core.services import sources

#: where the URL is read from when neither an argument nor --url-env gives it
URL_VARIABLE = "OUTREACH_SOURCE_URL"
#: a cell wider than this is cut in the printed table
CELL_WIDTH = 40


def source_url(args: argparse.Namespace) -> str:
    """The URL from the argument, `--url-env VAR` or OUTREACH_SOURCE_URL, in that order."""
    if args.url and args.url_env:
        raise InputError("give the URL as an argument or with --url-env, not both")
    if args.url:
        if sources.has_password(args.url):
            print(
                "note: the URL's password is visible to other local users while this runs; "
                f"put the URL in an environment variable (--url-env VAR or {URL_VARIABLE})",
                file=sys.stderr,
            )
        return str(args.url)
    variable = args.url_env or URL_VARIABLE
    url = os.environ.get(variable, "").strip()
    if not url:
        if args.url_env:
            raise InputError(f"--url-env {variable}: that environment variable is not set")
        raise InputError(
            f"give the source URL: as an argument, with --url-env VAR, or in {URL_VARIABLE}"
        )
    return url


def parameter_values(items: list[str]) -> dict[str, str]:
    """`--param name=value` options as a dict; a malformed one is an error naming it."""
    values = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip().isidentifier():
            raise InputError(f"--param {item!r}: write --param name=value")
        values[name.strip()] = value
    return values


def _cell(text: str) -> str:
    text = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def print_table(columns: list[str], rows: list[dict[str, str]]) -> None:
    """Rows as aligned columns under their names."""
    table = [[_cell(c) for c in columns]] + [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[n]) for line in table) for n in range(len(columns))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def cmd_source(ws: Workspace, args: argparse.Namespace) -> int:
    """`source test [URL] QUERY`: the first rows of a read-only query, or why it was refused."""
    url = source_url(args)
    result = sources.try_query(
        url,
        args.query,
        parameter_values(args.param),
        row_cap=args.row_cap,
        timeout_s=args.timeout,
        preview_rows=args.rows,
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    shown = result.rows[: args.rows]
    print(f"{result.total} rows in {result.elapsed_s:.2f} s (first {len(shown)} shown)")
    print_table(result.columns, shown)
    return EXIT_OK
