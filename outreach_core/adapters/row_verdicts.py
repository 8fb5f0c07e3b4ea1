"""Each row's verdict (accepted, rejected with the reason, duplicate of an earlier row) for rows
that come in chunks, as `domain.address_cells.classify_rows` decides for a whole list: the
addresses seen so far are kept on disk (`SeenAddresses`), so memory does not grow with rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from outreach_core.adapters.seen_addresses import SeenAddresses
from outreach_core.domain.address_cells import RowStatus, RowVerdict
from outreach_core.domain.validation import check_syntax


class StreamedVerdicts:
    """Verdicts of consecutive chunks of rows; `counts` adds them up."""

    def __init__(
        self, email_column: str, *, test_environment: bool = False, directory: Path | None = None
    ) -> None:
        self.email_column = email_column
        self.test_environment = test_environment
        self.seen = SeenAddresses(directory)
        self.counts = dict.fromkeys(RowStatus, 0)

    def classify(self, first_row: int, rows: Sequence[dict[str, Any]]) -> list[RowVerdict]:
        """The verdicts of `rows`, numbered from `first_row` (following the last chunk)."""
        verdicts: list[RowVerdict | None] = []
        keys: list[str] = []
        numbers: list[int] = []
        where: list[int] = []
        for index, row in enumerate(rows):
            raw = str(row.get(self.email_column) or "")
            checked = check_syntax(raw, test_environment=self.test_environment)
            if not checked.ok or checked.key is None:
                verdicts.append(RowVerdict(RowStatus.REJECTED, checked.error or "invalid"))
                continue
            verdicts.append(None)
            keys.append(checked.key)
            numbers.append(first_row + index)
            where.append(index)
        new = self.seen.add_many(keys, numbers)
        repeated = [key for key, is_new in zip(keys, new, strict=True) if not is_new]
        first_of = self.seen.first_rows(repeated) if repeated else {}
        for index, key, is_new in zip(where, keys, new, strict=True):
            if is_new:
                verdicts[index] = RowVerdict(RowStatus.ACCEPTED)
            else:
                first = first_of[key]
                verdicts[index] = RowVerdict(
                    RowStatus.DUPLICATE, f"same address as row {first}", first
                )
        done = [v for v in verdicts if v is not None]
        for verdict in done:
            self.counts[verdict.status] += 1
        return done

    def close(self) -> None:
        self.seen.close()

    def __enter__(self) -> StreamedVerdicts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
