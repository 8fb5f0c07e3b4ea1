"""A set of addresses kept on disk: duplicates found among millions of rows in constant memory.

A Python set of a million addresses holds about 100 MB; this one is a temporary SQLite file
with one primary-key table, written in batches (`INSERT OR IGNORE`: a row the key already
holds changes nothing, so `changes()` after each insert says whether the address was new).
The file is deleted on `close()`. Each address may carry the number of the row it was first
seen on, so a duplicate can name that row (`first_rows`).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

#: keys looked up per statement (SQLite allows 32,766 host parameters)
_LOOKUP_BATCH = 500


class SeenAddresses:
    """Addresses seen so far (keys compared exactly: normalise them first), on disk.

    `add_many` adds a batch and says which were new; `in` asks about one; `first_rows` gives
    the row number each key was first added with. Use it as a context manager, or `close()`.
    """

    def __init__(self, directory: Path | None = None, *, cache_kib: int = 8_192) -> None:
        handle, name = tempfile.mkstemp(prefix="seen-addresses-", suffix=".sqlite", dir=directory)
        os.close(handle)
        self._path = Path(name)
        # one connection, one thread: the owner of the set; nothing else opens the file
        self._conn = sqlite3.connect(self._path, isolation_level=None)
        # a scratch file: losing it in a crash loses nothing, so no journal and no syncs
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        self._conn.execute(
            "CREATE TABLE seen (key TEXT PRIMARY KEY, first_row INTEGER) WITHOUT ROWID"
        )
        self._count = 0

    @property
    def path(self) -> Path:
        """The temporary file (gone after `close()`)."""
        return self._path

    def __len__(self) -> int:
        return self._count

    def add_many(self, addresses: Iterable[str], rows: Sequence[int] | None = None) -> list[bool]:
        """Add the addresses in order; for each, True when it was not seen before (a repeat
        inside the batch is not new either). `rows`: the row number stored with each."""
        cursor = self._conn.cursor()
        new: list[bool] = []
        cursor.execute("BEGIN")
        try:
            for index, address in enumerate(addresses):
                row = rows[index] if rows is not None else None
                cursor.execute(
                    "INSERT OR IGNORE INTO seen (key, first_row) VALUES (?, ?)", (address, row)
                )
                added = cursor.rowcount == 1
                new.append(added)
                self._count += added
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return new

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        found = self._conn.execute("SELECT 1 FROM seen WHERE key = ?", (address,)).fetchone()
        return found is not None

    def first_row(self, address: str) -> int | None:
        """The row number stored with `address`, or None (not in the set, or stored without)."""
        found = self._conn.execute("SELECT first_row FROM seen WHERE key = ?", (address,))
        row = found.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def first_rows(self, addresses: Iterable[str]) -> dict[str, int]:
        """The row number stored with each of `addresses` that is in the set (and has one)."""
        wanted = list(dict.fromkeys(addresses))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            batch = wanted[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(batch))
            query = f"SELECT key, first_row FROM seen WHERE key IN ({marks})"
            for key, row in self._conn.execute(query, batch):
                if row is not None:
                    found[str(key)] = int(row)
        return found

    def close(self) -> None:
        """Close the database and delete its file (twice is harmless)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> SeenAddresses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
