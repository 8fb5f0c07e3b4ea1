"""Audiences from SQL: one read-only query against the team's own database.

Three guards, outermost first:
1. `check_read_only` refuses anything but a single `SELECT` / `WITH … SELECT` before the query
   reaches the database, saying why;
2. SQLite is opened with `mode=ro` (and `PRAGMA query_only`), PostgreSQL runs the query inside a
   `READ ONLY` transaction with a `statement_timeout`; other databases (when their driver is
   installed) run inside a transaction that is always rolled back;
3. every error (connection, timeout, SQL) is a `SourceError`, never "0 recipients".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from outreach_core.errors import InputError, SourceError

#: rows shown in a preview
PREVIEW_ROWS = 100
#: a query returning more rows than this is refused (can be raised per source)
DEFAULT_ROW_CAP = 500_000
DEFAULT_TIMEOUT_S = 30.0
#: words that write, change the schema or the session: refused anywhere outside quotes
FORBIDDEN_WORDS = frozenset(
    [
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "UPSERT",
        "DROP",
        "CREATE",
        "ALTER",
        "TRUNCATE",
        "ATTACH",
        "DETACH",
        "PRAGMA",
        "GRANT",
        "REVOKE",
        "COPY",
        "VACUUM",
        "REINDEX",
        "ANALYZE",
        "CALL",
        "EXEC",
        "EXECUTE",
        "DO",
        "LOCK",
        "INTO",
        "LOAD",
        "COMMENT",
        "CLUSTER",
        "REFRESH",
    ]
)
#: built-in parameters every query may use
BUILTIN_PARAMETERS = ("run_date", "today", "last_run_at")
#: `:last_run_at` before a workflow's first completed run: every row counts as new
FIRST_RUN_SINCE = datetime(1970, 1, 1, tzinfo=UTC)

# quoted strings, quoted identifiers, dollar quotes and comments, in the order they can open
_LEXEME = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)
    | (?P<semicolon>;)
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<param>(?<!:):[A-Za-z_]\w*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class QueryResult:
    """What a source query returned: all rows (at most the cap) and the first ones for display."""

    columns: list[str]
    rows: list[dict[str, str]]
    elapsed_s: float

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def preview(self) -> list[dict[str, str]]:
        return self.rows[:PREVIEW_ROWS]


def _lexemes(sql: str) -> list[tuple[str, str]]:
    """(kind, text) outside comments; an unterminated quote is an error."""
    found = []
    for match in _LEXEME.finditer(sql):
        kind = match.lastgroup if match.lastgroup != "tag" else "string"
        assert kind is not None
        if kind == "other" and match.group() in ("'", '"', "`"):
            raise InputError(f"the query has an unterminated quote at character {match.start()}")
        if kind != "comment":
            found.append((kind, match.group()))
    return found


def check_read_only(sql: str) -> list[str]:
    """Refuse anything but one SELECT or WITH … SELECT; return its named parameters.

    Deliberately strict: a word that writes (INSERT, UPDATE, DELETE, DROP, ATTACH, PRAGMA, …)
    anywhere outside quotes is refused, even where the database would treat it harmlessly.
    """
    lexemes = _lexemes(sql)
    statements: list[list[tuple[str, str]]] = [[]]
    for kind, text in lexemes:
        if kind == "semicolon":
            statements.append([])
        elif kind != "other" or text.strip():
            statements[-1].append((kind, text))
    statements = [s for s in statements if s]
    if not statements:
        raise InputError("the query is empty")
    if len(statements) > 1:
        raise InputError(
            f"only one statement is allowed; this query has {len(statements)} (separated by ;)"
        )
    [statement] = statements
    first = statement[0][1].upper()
    if first not in ("SELECT", "WITH"):
        raise InputError(f"only SELECT or WITH … SELECT is allowed; this query starts with {first}")
    words = {text.upper() for kind, text in statement if kind == "word"}
    forbidden = sorted(words & FORBIDDEN_WORDS)
    if forbidden:
        raise InputError(f"only reading is allowed; the query contains {', '.join(forbidden)}")
    if "SELECT" not in words:
        raise InputError("a WITH query must end in a SELECT")
    return sorted({text[1:] for kind, text in statement if kind == "param"})


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


def masked(url: str) -> str:
    """The URL with its password hidden, for display and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable URL)"


def _engine(url: str, timeout_s: float) -> sa.Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InputError("the connection URL is not a valid SQLAlchemy URL") from None
    try:
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database or ""
            if not path or path == ":memory:":
                raise InputError("a SQLite source needs a database file")
            ro = parsed.set(database=f"file:{path}", query={"mode": "ro", "uri": "true"})
            return sa.create_engine(ro, poolclass=sa.pool.NullPool)
        if parsed.get_backend_name() == "postgresql":
            connect_args = {"connect_timeout": max(1, int(timeout_s))}
            return sa.create_engine(parsed, poolclass=sa.pool.NullPool, connect_args=connect_args)
        return sa.create_engine(parsed, poolclass=sa.pool.NullPool)
    except NoSuchModuleError:
        raise InputError(
            f"no driver installed for {parsed.drivername}; install it or use SQLite/PostgreSQL"
        ) from None


def _guard(conn: Connection, dialect: str, timeout_s: float) -> None:
    """Make the open transaction read-only and bounded in time."""
    if dialect == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
    elif dialect == "sqlite":
        conn.exec_driver_sql("PRAGMA query_only = ON")
        raw = conn.connection.dbapi_connection
        deadline = time.monotonic() + timeout_s
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)  # type: ignore[union-attr]


def _cell(value: object) -> str:
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
    """Run an already checked query read-only; any database error is a SourceError."""
    engine = _engine(url, timeout_s)
    where = masked(url)
    started = time.perf_counter()
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            _guard(conn, engine.dialect.name, timeout_s)
            if engine.dialect.name == "sqlite":
                # SQLite keeps dates as ISO text; bind them so (sqlite3's date adapter is
                # deprecated since Python 3.12).
                params = {k: _sqlite_value(v) for k, v in params.items()}
            result = conn.execute(sa.text(sql), params)
            columns = list(result.keys())
            fetched = result.fetchmany(row_cap + 1)
            transaction.rollback()
    except DBAPIError as exc:
        raise SourceError(f"{where}: {_first_line(exc)}") from None
    except SQLAlchemyError as exc:
        raise SourceError(f"{where}: {exc.__class__.__name__}: {exc}") from None
    finally:
        engine.dispose()
    if len(fetched) > row_cap:
        raise SourceError(
            f"the query returns more than the row cap of {row_cap:,} rows; narrow it or raise the cap"
        )
    rows = [{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in fetched]
    return QueryResult(columns, rows, time.perf_counter() - started)


def _sqlite_value(value: object) -> object:
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


def _first_line(exc: DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
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
    """Check, bind and run a source query read-only."""
    names = check_read_only(sql)
    params = bind_values(names, values or {}, run_date=run_date, extra=extra)
    return execute(url, sql, params, row_cap=row_cap, timeout_s=timeout_s)
