"""The SQL source lexers against the real parsers (hypothesis, bounded): random queries made of
quoting fragments are split into statements by the lexer and by the database itself, and the
two must agree wherever the database gives an answer.

PostgreSQL (127.0.0.1:5432) only parses each text (a protocol-level Parse of the unnamed
statement, never executed); SQLite runs it on an empty in-memory database, and the fragments
only read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outreach_core.adapters.sql_check import Token, tokens
from outreach_core.errors import InputError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# a second statement only counts when the whole text parses: "; SELECT 2" makes that likely
COMMON = ["'", "''", "'a'", '"', '"c"', ";", "; SELECT 2", " ", "\n", "\r", "--", "/*", "*/", "\\"]
PG_FRAGMENTS = [*COMMON, "E'", "e'\\''", "$$", "$a$", "$1", "U&", "é", "::", "/* /* */", "B'"]
SQLITE_FRAGMENTS = [*COMMON, "[", "]", "`", "$a", ":p", "@", "x'", "(", ")", "\ufeff"]


def queries(fragments: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(fragments), max_size=14).map(lambda f: "SELECT 1 " + "".join(f))


def lexed(sql: str, dialect: str) -> list[Token] | None:
    """The tokens, or None when the lexer refuses the text as unterminated."""
    try:
        return tokens(sql, dialect)
    except InputError:
        return None


def statement_count(found: list[Token]) -> int:
    count, filled = 0, False
    for token in found:
        if token.kind == "semicolon":
            count, filled = count + filled, False
        elif token.kind not in ("space", "comment"):
            filled = True
    return count + filled


@pytest.fixture(scope="module")
def parser(postgres_server: str) -> Iterator[psycopg.Connection]:
    url = sa.engine.make_url(postgres_server)
    conn = psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname=url.database
    )
    yield conn
    conn.close()


@FUZZ
@given(sql=queries(PG_FRAGMENTS))
def test_postgresql_lexer_splits_statements_as_the_server_does(
    parser: psycopg.Connection, sql: str
) -> None:
    """Verify: the server finds several commands -> so does the lexer; the server parses one
    -> the lexer finds exactly one. The lexer may refuse a text as unterminated instead
    (stricter than the server: safe)."""
    found = lexed(sql, "postgresql")
    result = parser.pgconn.prepare(b"", sql.encode())
    message = (result.error_message or b"").decode(errors="replace")
    if found is None:
        return
    if "cannot insert multiple commands" in message:
        assert statement_count(found) > 1, sql
    elif result.status == psycopg.pq.ExecStatus.COMMAND_OK:
        assert statement_count(found) == 1, sql


@FUZZ
@given(sql=queries(SQLITE_FRAGMENTS))
def test_sqlite_lexer_splits_statements_as_sqlite_does(sql: str) -> None:
    """Verify: sqlite3 refuses a second statement -> the lexer sees something after a ; at the
    top level; sqlite3 runs the text -> the lexer finds exactly one statement. The lexer may
    refuse a text as unterminated instead (SQLite lets a /* comment run to the end: safe)."""
    found = lexed(sql, "sqlite")
    if found is None:
        return
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(sql).fetchall()
    except sqlite3.ProgrammingError as exc:
        if "one statement at a time" in str(exc):
            first = next(n for n, t in enumerate(found) if t.kind == "semicolon")
            # Python's check also refuses a BOM after the ; (SQLite itself reads it as space)
            after = found[first + 1 :]
            assert any(t.kind not in ("space", "comment") or "\ufeff" in t.text for t in after)
    except (sqlite3.Error, OverflowError):
        pass  # a syntax error (or an odd value): SQLite says nothing about the split
    else:
        assert statement_count(found) == 1, sql
    finally:
        conn.close()
