"""`FirstRows` (which row an address first appeared on) kept on disk in `SeenAddresses`, so a
freeze of millions of rows finds duplicates across its chunks without holding every address."""

from __future__ import annotations

from types import TracebackType

from outreach_core.adapters.seen_addresses import SeenAddresses


class FirstRowsOnDisk:
    """The `domain.planning.FirstRows` protocol on disk."""

    def __init__(self) -> None:
        self._seen = SeenAddresses()

    def first_row(self, key: str, row_number: int) -> int | None:
        """The row `key` appeared on before, or None (and `row_number` is remembered)."""
        if self._seen.add_many([key], [row_number])[0]:
            return None
        return self._seen.first_rows([key])[key]

    def close(self) -> None:
        """Drop the file."""
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
