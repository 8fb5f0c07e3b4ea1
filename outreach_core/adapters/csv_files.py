"""CSV written row by row to a file, never built whole in memory: the exports and the dry run's
result file hold one line per recipient, and an audience may have millions.

`csv_part_file` writes `<name>.part` and renames it to `<name>` only once every row is
written, so a crash or an error leaves no half file under the name a person asked for.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from outreach_core.domain.csv_cells import neutralise


class CsvRowWriter:
    """Writes rows to `out` as `domain.csv_cells.write_csv` would (every cell neutralised; a
    row holding a line break fully quoted), one row at a time."""

    def __init__(self, out: TextIO, *, lineterminator: str = "\n") -> None:
        self._minimal = csv.writer(out, lineterminator=lineterminator)
        # a bare CR in a cell would split the row in a spreadsheet (see `csv_cells`)
        self._quoted = csv.writer(out, lineterminator=lineterminator, quoting=csv.QUOTE_ALL)
        self.rows = 0

    def write(self, row: Sequence[object]) -> None:
        safe = [neutralise(v) for v in row]
        writer = self._quoted if any("\r" in v or "\n" in v for v in safe) else self._minimal
        writer.writerow(safe)
        self.rows += 1

    def write_all(self, rows: Iterable[Sequence[object]]) -> int:
        """Write every row; returns how many were written by this call."""
        before = self.rows
        for row in rows:
            self.write(row)
        return self.rows - before


def write_csv_rows(
    out: TextIO,
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    lineterminator: str = "\n",
) -> int:
    """The header line, then each row as it comes; returns the number of data rows."""
    writer = CsvRowWriter(out, lineterminator=lineterminator)
    writer.write(header)
    return writer.write_all(rows)


def part_path(path: Path) -> Path:
    """Where a file is written before it is complete: `<name>.part` beside it."""
    return path.with_name(path.name + ".part")


@contextmanager
def csv_part_file(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text file to write `path` through: written as `<name>.part`, renamed to `path`
    when the block ends normally; on an error the part file is removed and `path` untouched."""
    part = part_path(path)
    try:
        with part.open("w", encoding="utf-8", newline="") as out:
            yield out
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
