"""`FirstRows` (which row an address first appeared on) kept in a temporary SQLite file, so a
freeze of millions of rows finds duplicates across its chunks without holding every address."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from types import TracebackType


class FirstRowsOnDisk:
    """The `domain.planning.FirstRows` protocol on disk."""

    def __init__(self) -> None:
        handle, self._path = tempfile.mkstemp(prefix="outreach-first-rows-", suffix=".sqlite")
        os.close(handle)
        self._db = sqlite3.connect(self._path)
        # a scratch file dropped at close: durability would only cost time
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("PRAGMA cache_size = -8000")  # about 8 MB of pages, whatever the size
        self._db.execute("CREATE TABLE first (key TEXT PRIMARY KEY, row INTEGER) WITHOUT ROWID")

    def first_row(self, key: str, row_number: int) -> int | None:
        """The row `key` appeared on before, or None (and `row_number` is remembered)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO first (key, row) VALUES (?, ?)", (key, row_number)
        )
        if cursor.rowcount == 1:
            return None
        found = self._db.execute("SELECT row FROM first WHERE key = ?", (key,)).fetchone()
        return int(found[0])

    def close(self) -> None:
        """Drop the file."""
        self._db.close()
        if os.path.exists(self._path):
            os.remove(self._path)

    def __enter__(self) -> FirstRowsOnDisk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
