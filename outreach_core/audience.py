"""Audiences from files: parsing, column names made into template variables."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from outreach_core.errors import InputError

#: column names recognised as the email column, compared case-insensitively
EMAIL_COLUMN_NAMES = ("email", "e-mail", "e_mail", "email_address", "recipient_email", "mail")


@dataclass(frozen=True)
class ParsedFile:
    """A contacts file read into rows of variables (all values are strings)."""

    source: str
    columns: list[str]
    email_column: str
    rows: list[dict[str, str]]


def identifier(name: str) -> str:
    """A column header as a template variable name: `First name` -> `first_name`."""
    ident = re.sub(r"\W+", "_", name.strip()).strip("_").lower()
    if not ident:
        return "column"
    return f"col_{ident}" if ident[0].isdigit() else ident


def _unique_identifiers(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for header in headers:
        base = identifier(str(header))
        count = seen.get(base, 0)
        seen[base] = count + 1
        names.append(base if count == 0 else f"{base}_{count + 1}")
    return names


def detect_email_column(columns: list[str]) -> str | None:
    """The first column whose name is a known email header, if any."""
    lowered = {column.lower(): column for column in columns}
    for candidate in EMAIL_COLUMN_NAMES:
        found = lowered.get(candidate.replace("-", "_"), lowered.get(candidate))
        if found:
            return found
    return None


def parse_csv(data: bytes, *, source: str, email_column: str | None = None) -> ParsedFile:
    """Parse CSV bytes: delimiter sniffed, UTF-8 (with or without BOM), else Latin-1."""
    import pandas as pd  # imported here: the send path never needs it (about 80 MB)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise InputError(f"{source}: the file is empty")
    try:
        dialect = csv.Sniffer().sniff(text[:64_000], delimiters=",;\t|")
        separator = dialect.delimiter
    except csv.Error:
        separator = ","
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{source}: not a readable CSV file: {exc}") from None
    columns = _unique_identifiers(list(frame.columns))
    frame.columns = columns
    chosen = identifier(email_column) if email_column else detect_email_column(columns)
    if chosen is None or chosen not in columns:
        wanted = email_column or " / ".join(EMAIL_COLUMN_NAMES)
        raise InputError(f"{source}: no email column ({wanted}); columns are: {', '.join(columns)}")
    rows = frame.to_dict(orient="records")
    return ParsedFile(source=source, columns=columns, email_column=chosen, rows=rows)


def read_contacts_file(path: Path, *, email_column: str | None = None) -> ParsedFile:
    """Read a contacts file from disk."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return parse_csv(path.read_bytes(), source=path.name, email_column=email_column)
