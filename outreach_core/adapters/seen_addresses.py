"""A set of addresses kept on disk (a temporary SQLite file), for duplicate checks over
audiences too large to hold in memory."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable
from types import TracebackType


class SeenAddresses:
    """Addresses seen so far; `add_many` says, per address, whether it was new."""

    def __init__(self) -> None:
        handle, self._path = tempfile.mkstemp(prefix="outreach-seen-", suffix=".sqlite")
        os.close(handle)
        self._db = sqlite3.connect(self._path)
        # a scratch file: durability would only cost time
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE seen (address TEXT PRIMARY KEY) WITHOUT ROWID")

    def add_many(self, addresses: Iterable[str]) -> list[bool]:
        """Add each address; True where it was not seen before (also within this batch)."""
        fresh: list[bool] = []
        cursor = self._db.cursor()
        for address in addresses:
            cursor.execute("INSERT OR IGNORE INTO seen (address) VALUES (?)", (address,))
            fresh.append(cursor.rowcount == 1)
        return fresh

    def __contains__(self, address: object) -> bool:
        found = self._db.execute("SELECT 1 FROM seen WHERE address = ?", (address,)).fetchone()
        return found is not None

    def close(self) -> None:
        """Drop the file."""
        self._db.close()
        if os.path.exists(self._path):
            os.remove(self._path)

    def __enter__(self) -> SeenAddresses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
