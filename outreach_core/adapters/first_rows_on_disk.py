"""`FirstRows` (which row an address first appeared on) kept on disk in `SeenAddresses`, so a
freeze of millions of rows finds duplicates across its chunks without holding every address.

The addresses met since the last write wait in memory (at most `pending_limit`) and go to the
file together, in one transaction: a transaction per row would write the file's pages out for
every row of the audience."""

from __future__ import annotations

from types import TracebackType

from outreach_core.adapters.seen_addresses import SeenAddresses

#: addresses held in memory before they are written to the file together
PENDING_LIMIT = 2_000


class FirstRowsOnDisk:
    """The `domain.planning.FirstRows` protocol on disk."""

    def __init__(self, *, pending_limit: int = PENDING_LIMIT) -> None:
        self._seen = SeenAddresses()
        self._pending: dict[str, int] = {}
        self._pending_limit = pending_limit

    def first_row(self, key: str, row_number: int) -> int | None:
        """The row `key` appeared on before, or None (and `row_number` is remembered)."""
        earlier = self._pending.get(key)
        if earlier is None:
            earlier = self._seen.first_row(key)
        if earlier is None:
            self._pending[key] = row_number
            if len(self._pending) >= self._pending_limit:
                self._write_pending()
        return earlier

    def _write_pending(self) -> None:
        self._seen.add_many(list(self._pending), list(self._pending.values()))
        self._pending.clear()

    def close(self) -> None:
        """Drop the file."""
        self._pending.clear()
        self._seen.close()

    def __enter__(self) -> FirstRowsOnDisk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
