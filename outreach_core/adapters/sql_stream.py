"""A SQL source's rows read in chunks, so an audience of millions never sits in memory.

The same guards as `sql_runner` (the query checked read-only and wrapped, one statement, a
read-only transaction with its timeouts, the role check, SQLite opened read-only with
`query_only`), and the same errors (`SourceError`, no password shown). What differs is the
reading: PostgreSQL through a server-side cursor (psycopg's named cursor: `DECLARE … CURSOR`,
then `FETCH` chunk by chunk), SQLite by `fetchmany`. The timeouts hold per fetch: a long read
of many chunks is not stopped for its total time, only a fetch that takes too long is (and the
idle-in-transaction timeout is at least `IDLE_IN_TRANSACTION_FLOOR_MS`, for the pauses while
the caller stores a chunk). The source's row cap is applied while reading: the read stops at
the first row past it, with the error naming the cap and the setting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from outreach_core.adapters.sql_check import check_read_only, driver_text
from outreach_core.adapters.sql_runner import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIMEOUT_S,
    bind_values,
    cell_text,
    first_line,
    guard_postgresql,
    guard_sqlite,
    masked,
    row_cap_message,
    scrubbed,
    source_dialect,
    source_engine,
    sqlite_value,
)
from outreach_core.errors import SourceError

#: rows per fetch (and per chunk handed to the caller)
CHUNK_ROWS = 2_000


@dataclass
class SourceRows:
    """An open read of a source query: its columns, the warnings about the source, and its rows
    chunk by chunk (`chunks()`, to be read once, inside `stream_query`'s `with`)."""

    columns: list[str]
    warnings: list[str]
    _fetch: Callable[[], list[tuple[Any, ...]]] = field(repr=False)
    _row_cap: int = field(repr=False)
    read: int = 0  # rows handed out so far

    def chunks(self) -> Iterator[list[dict[str, str]]]:
        """Lists of at most CHUNK_ROWS rows (cells as text, `sql_runner.cell_text`); a
        SourceError as soon as a row past the row cap is read."""
        while True:
            fetched = self._fetch()
            if not fetched:
                return
            if self.read + len(fetched) > self._row_cap:
                raise SourceError(row_cap_message(self._row_cap))
            self.read += len(fetched)
            yield [
                {c: cell_text(v) for c, v in zip(self.columns, row, strict=True)} for row in fetched
            ]

    def rows(self) -> Iterator[dict[str, str]]:
        """Row by row, over `chunks()`."""
        for chunk in self.chunks():
            yield from chunk


@contextmanager
def stream_query(
    url: str,
    sql: str,
    *,
    values: dict[str, str] | None = None,
    run_date: datetime,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extra: dict[str, Any] | None = None,
    chunk_rows: int | None = None,
) -> Iterator[SourceRows]:
    """Check, bind and open a source query read-only; the rows are read as the caller walks
    `chunks()` (`chunk_rows` at a time, CHUNK_ROWS unless given). Leaving the `with` ends
    the read (the transaction is rolled back)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    dialect = source_dialect(url)
    names = check_read_only(sql, dialect)
    params = bind_values(names, values or {}, run_date=run_date, extra=extra)
    text = driver_text(sql, dialect)
    engine = source_engine(url, timeout_s)
    errors = engine.dialect.loaded_dbapi.Error
    try:
        with _as_source_error(url, errors):
            conn = engine.connect()
        try:
            raw: Any = conn.connection.dbapi_connection
            with _as_source_error(url, errors):
                opener = _open_sqlite if dialect == "sqlite" else _open_postgresql
                stream = opener(raw, text, params, timeout_s, chunk_rows, row_cap)
            if not stream.columns:
                raise SourceError(f"{masked(url)}: the query returned no rows to read")
            fetch = stream._fetch

            def guarded_fetch() -> list[tuple[Any, ...]]:
                with _as_source_error(url, errors):
                    return fetch()

            stream._fetch = guarded_fetch
            # the caller's own errors (its database included) pass through untouched
            yield stream
        finally:
            with _as_source_error(url, errors):
                conn.connection.dbapi_connection.rollback()
                conn.close()
    finally:
        engine.dispose()


@contextmanager
def _as_source_error(url: str, errors: type[Exception]) -> Iterator[None]:
    """A driver or SQLAlchemy error of the source as a SourceError, no secret of the URL in it."""
    try:
        yield
    except errors as exc:
        raise SourceError(scrubbed(f"{masked(url)}: {first_line(exc)}", url)) from None
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise SourceError(scrubbed(f"{masked(url)}: {first_line(cause)}", url)) from None


def _open_sqlite(
    raw: Any, text: str, params: dict[str, Any], timeout_s: float, chunk_rows: int, cap: int
) -> SourceRows:
    cursor = raw.cursor()
    warnings = guard_sqlite(raw, cursor, timeout_s)
    # guard_sqlite's deadline counts from the start; a streamed read gets one per fetch
    deadline = [time.monotonic() + timeout_s]
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)
    cursor.execute(text, {k: sqlite_value(v) for k, v in params.items()})

    def fetch() -> list[tuple[Any, ...]]:
        deadline[0] = time.monotonic() + timeout_s
        return list(cursor.fetchmany(chunk_rows))

    columns = [c[0] for c in cursor.description] if cursor.description else []
    return SourceRows(columns, warnings, fetch, cap)


def _open_postgresql(
    raw: Any, text: str, params: dict[str, Any], timeout_s: float, chunk_rows: int, cap: int
) -> SourceRows:
    guard = raw.cursor()
    warnings = guard_postgresql(guard, timeout_s)  # statement_timeout then holds per FETCH
    guard.close()
    # a named cursor is a server-side one: DECLARE over the extended protocol (one statement)
    cursor = raw.cursor(name="outreach_source_rows")
    cursor.itersize = chunk_rows
    cursor.execute(text, params)

    def fetch() -> list[tuple[Any, ...]]:
        return list(cursor.fetchmany(chunk_rows))

    columns = [c[0] for c in cursor.description] if cursor.description else []
    return SourceRows(columns, warnings, fetch, cap)
