"""Audiences from SQL: one read-only query against the team's own database.

Guards, outermost first:
1. `check_read_only` (`sql_check`) lexes the query as its database does and refuses anything
   but one `SELECT` / `WITH … SELECT` / `VALUES`, writing words, row locks and functions that
   act on the server, saying why;
2. the driver runs one statement only: PostgreSQL through psycopg 3 as a prepared statement
   (the extended protocol refuses several commands), SQLite through `sqlite3` (which refuses
   a second statement);
3. PostgreSQL runs it in a `READ ONLY` transaction with `statement_timeout`, `lock_timeout`
   and `idle_in_transaction_session_timeout` (checked to be on before the query runs); SQLite
   is opened with `mode=ro` and `PRAGMA query_only`. Other databases are refused;
4. every error (connection, timeout, SQL) is a `SourceError`, never "0 recipients", and no
   message shows the URL's password (`masked`, `scrubbed`).

On PostgreSQL the same connection also asks whether the role could write (superuser, a write
privilege on some table, or the server-file roles): the result carries a warning then, since
the guards above are a second line behind a role that can only read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote_plus

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from outreach_core.adapters.sql_check import check_read_only, driver_text
from outreach_core.adapters.url_secrets import mask_url, scrub
from outreach_core.errors import InputError, SourceError

__all__ = ["QueryResult", "check_read_only", "execute", "masked", "run_query", "scrubbed"]

#: rows shown in a preview
PREVIEW_ROWS = 100
#: a query returning more rows than this is refused (a setting of each source, `row_cap`)
DEFAULT_ROW_CAP = 5_000_000
DEFAULT_TIMEOUT_S = 30.0
#: the least idle-in-transaction timeout: a streamed read pauses between fetches while its
#: rows are stored, and must not be cut off by a timeout meant for a stuck client
IDLE_IN_TRANSACTION_FLOOR_MS = 120_000
#: query parameters shown as *** (and so is any whose name has password, secret or token)
SECRET_PARAMETERS = frozenset(
    ["password", "pass", "passwd", "pwd", "secret", "token", "sslpassword"]
)
# SQLAlchemy's reading of `user:password@` (the password runs up to the first @)
_USERINFO = re.compile(r"([^:/]*)(?::([^@]*))?@")
#: built-in parameters every query may use
BUILTIN_PARAMETERS = ("run_date", "today", "last_run_at")
#: `:last_run_at` before a workflow's first completed run: every row counts as new
FIRST_RUN_SINCE = datetime(1970, 1, 1, tzinfo=UTC)
#: what the role may do beyond reading, asked in the source's own read-only transaction
_ROLE_CHECK = """
SELECT current_user, r.rolsuper,
  (SELECT string_agg(g.rolname, ', ' ORDER BY g.rolname) FROM pg_catalog.pg_roles g
    WHERE g.rolname IN ('pg_write_server_files', 'pg_execute_server_program',
                        'pg_read_server_files')
      AND pg_catalog.pg_has_role(current_user, g.oid, 'MEMBER')),
  (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'f')
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      AND (pg_catalog.has_table_privilege(c.oid, 'INSERT')
           OR pg_catalog.has_table_privilege(c.oid, 'UPDATE')
           OR pg_catalog.has_table_privilege(c.oid, 'DELETE')
           OR pg_catalog.has_table_privilege(c.oid, 'TRUNCATE'))
    LIMIT 1)
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True)
class QueryResult:
    """What a source query returned: all rows (at most the cap), or only the first ones and
    how many there were (a preview: `counted`), and warnings about the source itself (a role
    that could write)."""

    columns: list[str]
    rows: list[dict[str, str]]
    elapsed_s: float
    warnings: list[str] = field(default_factory=list)
    #: how many rows the query returned, when `rows` holds only the first ones (a preview)
    counted: int | None = None
    #: the same query run again for all its rows (a preview's, for an import)
    rerun: Callable[[], QueryResult] | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> int:
        return len(self.rows) if self.counted is None else self.counted

    @property
    def preview(self) -> list[dict[str, str]]:
        return self.rows[:PREVIEW_ROWS]


def _secret_key(name: str) -> bool:
    key = unquote_plus(name).strip().lower()
    return key in SECRET_PARAMETERS or any(word in key for word in ("password", "secret", "token"))


def _authority(url: str) -> tuple[str, re.Match[str] | None, str]:
    """(scheme, the user:password@ part as SQLAlchemy reads it, the rest after it)."""
    scheme, _, rest = url.partition("://")
    userinfo = _USERINFO.match(rest)
    return scheme, userinfo, rest[userinfo.end() :] if userinfo else rest


def masked(url: str) -> str:
    """The URL for display, audit and error messages (`url_secrets.mask_url`: the password,
    password-like query parameters and any fragment as `***`)."""
    return mask_url(url) if "://" in url else "(unreadable URL)"


def scrubbed(text: str, url: str) -> str:
    """`text` with every secret of `url` replaced by `***` (a driver may quote what it got)."""
    return scrub(text, url)


def unambiguous(url: str) -> None:
    """Refuse a URL whose user name and password could be read two ways (an `@` in them)."""
    _, userinfo, rest = _authority(url)
    if userinfo and "@" in rest:
        raise InputError(
            "the connection URL has more than one @; write an @ inside the user name, the "
            "password or a parameter as %40"
        )


def source_dialect(url: str) -> str:
    """`postgresql` or `sqlite`; any other URL (or an unreadable one) is refused."""
    unambiguous(url)
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise InputError(
            "the connection URL is not a valid SQLAlchemy URL "
            "(sqlite:///path/to/file.db or postgresql+psycopg://user:password@host:5432/db)"
        ) from None
    if backend not in ("postgresql", "sqlite"):
        raise InputError(
            f"SQL sources read SQLite or PostgreSQL only ({backend} cannot be held to one "
            "read-only statement)"
        )
    return backend


def bind_values(
    names: list[str],
    values: dict[str, str],
    *,
    run_date: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Values for the query's parameters: built-ins (and `extra` ones, e.g. a recurring run's
    `last_run_at`), then the user's; a missing one is an error."""
    builtins: dict[str, Any] = {
        "run_date": run_date.date(),
        "today": date.today(),
        "last_run_at": FIRST_RUN_SINCE,
        **(extra or {}),
    }
    bound = {}
    for name in names:
        if name in values:
            bound[name] = values[name]
        elif name in builtins:
            bound[name] = builtins[name]
        else:
            raise InputError(
                f"parameter :{name} has no value; give it one "
                f"(built-ins: {', '.join(':' + b for b in BUILTIN_PARAMETERS)})"
            )
    return bound


def source_engine(url: str, timeout_s: float) -> sa.Engine:
    dialect = source_dialect(url)
    parsed = make_url(url)
    if dialect == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:":
            raise InputError("a SQLite source needs a database file")
        ro = parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
        return sa.create_engine(ro, poolclass=sa.pool.NullPool)
    # psycopg 3 whatever driver the URL names: it can run a query as a prepared statement
    parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {"connect_timeout": max(1, int(timeout_s))}
    try:
        return sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args=connect_args)
    except NoSuchModuleError:
        raise InputError("PostgreSQL sources need psycopg 3 (pip install psycopg)") from None


def guard_postgresql(cursor: Any, timeout_s: float) -> list[str]:
    """Make the transaction read-only and bounded in time, check it is, and say when the role
    could write. Runs first in the transaction (SET TRANSACTION must)."""
    ms = max(1, int(timeout_s * 1000))
    cursor.execute("SET TRANSACTION READ ONLY")
    for setting, value in (
        ("statement_timeout", ms),
        ("lock_timeout", ms),
        ("idle_in_transaction_session_timeout", max(ms, IDLE_IN_TRANSACTION_FLOOR_MS)),
    ):
        cursor.execute(f"SET LOCAL {setting} = {value}")
    # the lexer reads '…' with standard_conforming_strings on: make the server read it so too
    cursor.execute("SET LOCAL standard_conforming_strings = on")
    cursor.execute("SHOW transaction_read_only")
    if cursor.fetchone()[0] != "on":
        raise SourceError("the transaction could not be made read-only; nothing was run")
    cursor.execute(_ROLE_CHECK)
    role, superuser, file_roles, writable = cursor.fetchone()
    if superuser:
        found = ["is a superuser"]
    else:
        found = [f"is a member of {file_roles}"] if file_roles else []
        if writable:
            found.append(f"can write (INSERT, UPDATE, DELETE or TRUNCATE on {writable})")
    if not found:
        return []
    return [
        f"the source's database role {role} {' and '.join(found)}: give SQL sources a role "
        "that can only read (GRANT SELECT on the tables they need, nothing else)"
    ]


def guard_sqlite(raw: Any, cursor: Any, timeout_s: float) -> list[str]:
    cursor.execute("PRAGMA query_only = ON")
    deadline = time.monotonic() + timeout_s
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    return []


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def execute(
    url: str,
    sql: str,
    params: dict[str, Any],
    *,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Run an already checked query read-only; any database error is a SourceError.

    The query goes to the driver as the subquery of `SELECT * FROM (…)` (`driver_text`) and
    otherwise as written, so a statement that got past the check is refused by the server's
    parser, then by the driver (one statement), then by the read-only transaction."""
    text = driver_text(sql, source_dialect(url))
    return execute_text(url, text, params, row_cap=row_cap, timeout_s=timeout_s)


def execute_text(
    url: str,
    text: str,
    params: dict[str, Any],
    *,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Hand `text` to the driver exactly as given (psycopg placeholders on PostgreSQL) in the
    read-only transaction: the layers under the check and the wrapper, on their own."""
    engine = source_engine(url, timeout_s)
    dialect = engine.dialect.name
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.dbapi_connection
            cursor = raw.cursor()
            try:
                if dialect == "sqlite":
                    warnings = guard_sqlite(raw, cursor, timeout_s)
                    # SQLite keeps dates as ISO text; bind them so
                    cursor.execute(text, {k: sqlite_value(v) for k, v in params.items()})
                else:
                    warnings = guard_postgresql(cursor, timeout_s)
                    cursor.execute(text, params, prepare=True)
                if cursor.description is None:
                    raise SourceError(f"{masked(url)}: the query returned no rows to read")
                columns = [column[0] for column in cursor.description]
                fetched = cursor.fetchmany(row_cap + 1)
            finally:
                cursor.close()
                raw.rollback()
    except engine.dialect.loaded_dbapi.Error as exc:
        raise SourceError(scrubbed(f"{masked(url)}: {first_line(exc)}", url)) from None
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise SourceError(scrubbed(f"{masked(url)}: {first_line(cause)}", url)) from None
    finally:
        engine.dispose()
    if len(fetched) > row_cap:
        raise SourceError(row_cap_message(row_cap))
    rows = [{c: cell_text(v) for c, v in zip(columns, row, strict=True)} for row in fetched]
    return QueryResult(columns, rows, time.perf_counter() - started, warnings)


def row_cap_message(row_cap: int) -> str:
    """Why a query above its source's row cap is refused, naming the setting to raise."""
    return (
        f"the query returns more than the row cap of {row_cap:,} rows; narrow it or raise "
        "the source's row cap (its `row_cap` setting)"
    )


def sqlite_value(value: object) -> object:
    """Dates as ISO text; datetimes as naive UTC `YYYY-MM-DD HH:MM:SS`, SQLite's own form, so
    they compare with `CURRENT_TIMESTAMP` and `datetime()` values as text. Truncated to the
    second: a row stamped in that second is selected again rather than missed (and the dedupe
    window skips the repeat)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else exc.__class__.__name__
    if "interrupted" in text or "statement timeout" in text or "canceling statement" in text:
        return f"the query took too long and was stopped ({text})"
    return text


def run_query(
    url: str,
    sql: str,
    *,
    values: dict[str, str] | None = None,
    run_date: datetime,
    row_cap: int = DEFAULT_ROW_CAP,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    extra: dict[str, Any] | None = None,
) -> QueryResult:
    """Check (as the URL's database reads it), bind and run a source query read-only."""
    names = check_read_only(sql, source_dialect(url))
    params = bind_values(names, values or {}, run_date=run_date, extra=extra)
    return execute(url, sql, params, row_cap=row_cap, timeout_s=timeout_s)
