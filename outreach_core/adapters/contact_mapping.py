"""The user's choices applied to a parsed contacts file: the email column, multi-address cells
split (the column keeps one address, the whole cell is kept in `<column>_all`), and the name and company columns renamed to `first_name`, `last_name` and `company`
(the variables templates use). The file's own headers and values are kept."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.domain.address_cells import SplitMode, is_multi, split_rows
from outreach_core.domain.column_layouts import rename_roles
from outreach_core.errors import InputError


@dataclass(frozen=True)
class ImportChoices:
    """Headers chosen for each role (None: no such column) and what to do with cells holding
    several addresses."""

    email: str
    roles: dict[str, str | None] = field(default_factory=dict)
    split: SplitMode = SplitMode.FIRST


def multi_address_cells(parsed: ParsedFile, column: str) -> int:
    """How many cells of `column` hold more than one address."""
    return sum(1 for row in parsed.rows if is_multi(str(row.get(column) or "")))


def several_addresses(count: int, header: str) -> str:
    """`2 cells of 'E-mail 1 - Value' hold several addresses` (1 cell … holds)."""
    if count == 1:
        return f"1 cell of {header!r} holds several addresses"
    return f"{count} cells of {header!r} hold several addresses"


def _column_of(parsed: ParsedFile, header: str) -> str:
    if header in parsed.columns:
        return header
    if header not in parsed.headers:
        raise InputError(f"no column {header!r}; columns are: {', '.join(parsed.headers)}")
    return parsed.columns[parsed.headers.index(header)]


def _unique(name: str, taken: list[str]) -> str:
    suffix, candidate = 2, name
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def apply_choices(parsed: ParsedFile, choices: ImportChoices) -> ParsedFile:
    """The file as the audience will store it: every row kept (or one per address)."""
    email = _column_of(parsed, choices.email)
    columns, headers = list(parsed.columns), list(parsed.headers)
    rows, lines, notes = parsed.rows, list(parsed.lines), list(parsed.notes)
    multi = multi_address_cells(parsed, email)
    if multi:
        # the column keeps one address (what templates and sends use); the cell as the file
        # had it moves to a column of its own beside it
        keep_as = _unique(f"{email}_all", columns)
        moved = [{**row, keep_as: row.get(email, "")} for row in rows]
        rows, origin = split_rows(moved, column=keep_as, into=email, mode=choices.split)
        if lines:
            lines = [parsed.lines[i] for i in origin]
        header = parsed.headers[parsed.columns.index(email)]
        columns.append(keep_as)
        headers.append(f"{header} (all addresses)")
        how = "its first address kept" if choices.split is SplitMode.FIRST else "one row each"
        notes.append(f"{several_addresses(multi, header)}: {how}")
    chosen = {
        role: _column_of(parsed, header) if header else None
        for role, header in choices.roles.items()
    }
    renamed = rename_roles(columns, chosen)
    if renamed != columns:
        names = dict(zip(columns, renamed, strict=True))
        rows = [{names.get(k, k): v for k, v in row.items()} for row in rows]
        email = names[email]
    return replace(
        parsed,
        columns=renamed,
        headers=headers,
        email_column=email,
        rows=rows,
        lines=lines,
        notes=notes,
    )


def split_address_cells(parsed: ParsedFile, mode: SplitMode = SplitMode.FIRST) -> ParsedFile:
    """The file with the cells of its email column that hold several addresses split as the
    Audiences page splits them (`apply_choices`, no name columns renamed): the first address
    kept, or one row per address; a note says how many cells were split. A file without such
    cells comes back as it was."""
    return apply_choices(parsed, ImportChoices(parsed.email_column, split=mode))


class ChunkMapping:
    """`apply_choices` for a file read in chunks (`ContactStream`): the same columns, names
    and split, row by row. `multi` says whether any cell of the email column holds several
    addresses (a first pass counts them): only then is the `<column>_all` column added."""

    def __init__(
        self, columns: list[str], headers: list[str], choices: ImportChoices, *, multi: bool
    ) -> None:
        shape = ParsedFile(source="", columns=columns, email_column="", rows=[], headers=headers)
        self.source_email = _column_of(shape, choices.email)
        self.split = choices.split
        self.multi = multi
        columns, headers = list(columns), list(headers)
        self.keep_as: str | None = None
        if multi:
            self.keep_as = _unique(f"{self.source_email}_all", columns)
            header = headers[columns.index(self.source_email)]
            columns.append(self.keep_as)
            headers.append(f"{header} (all addresses)")
        chosen = {
            role: _column_of(shape, header) if header else None
            for role, header in choices.roles.items()
        }
        self.columns = rename_roles(columns, chosen)
        self.headers = headers
        self._names = dict(zip(columns, self.columns, strict=True))
        self.email_column = self._names[self.source_email]

    def apply(
        self, rows: list[dict[str, str]], lines: list[int]
    ) -> tuple[list[dict[str, str]], list[int]]:
        """The chunk's rows (and their file lines) as the audience stores them."""
        if self.keep_as is not None:
            moved = [{**row, self.keep_as: row.get(self.source_email, "")} for row in rows]
            rows, origin = split_rows(
                moved, column=self.keep_as, into=self.source_email, mode=self.split
            )
            lines = [lines[i] for i in origin]
        if any(old != new for old, new in self._names.items()):
            rows = [{self._names.get(k, k): v for k, v in row.items()} for row in rows]
        return rows, lines
