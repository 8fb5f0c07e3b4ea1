"""SQL sources: only one SELECT reaches the database, read-only, errors are errors.

Each test runs against a SQLite file and against the PostgreSQL server (own schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core.adapters.sql_runner import (
    check_read_only,
    execute,
    execute_text,
    masked,
    run_query,
)
from outreach_core.errors import InputError, SourceError

RUN_DATE = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)

REFUSED = {
    "insert": "INSERT INTO contacts (email, name) VALUES ('x@example.com', 'X')",
    "update": "UPDATE contacts SET name = 'changed'",
    "delete": "DELETE FROM contacts",
    "drop": "DROP TABLE contacts",
    "attach": "ATTACH DATABASE 'other.db' AS other",
    "pragma": "PRAGMA user_version = 7",
    "two statements": "SELECT * FROM contacts; DELETE FROM contacts",
    "select then drop": "SELECT 1;DROP TABLE contacts;",
    "cte that deletes": ("WITH gone AS (DELETE FROM contacts RETURNING *) SELECT * FROM gone"),
    "select into": "SELECT * INTO copy FROM contacts",
    "create as": "CREATE TABLE copy AS SELECT * FROM contacts",
    "hidden after comment": "SELECT 1 -- harmless\n; DELETE FROM contacts",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding a `contacts` table with three rows."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE contacts (email TEXT, name TEXT, joined DATE)"))
        conn.execute(
            sa.text("INSERT INTO contacts VALUES (:e, :n, :j)"),
            [
                {"e": "ann@example.com", "n": "Ann", "j": "2026-01-01"},
                {"e": "bob@example.com", "n": "Bob", "j": "2026-03-04"},
                {"e": "carl@example.com", "n": "Carl", "j": "2026-03-04"},
            ],
        )
    engine.dispose()
    yield url


def snapshot(url: str) -> tuple[list[tuple], list[str]]:
    """The contacts rows and the table names: what a refused query must leave alone."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM contacts ORDER BY email")).all()
        tables = sorted(sa.inspect(conn).get_table_names())
    engine.dispose()
    return [tuple(map(str, r)) for r in rows], tables


@pytest.mark.parametrize("sql", REFUSED.values(), ids=REFUSED.keys())
def test_writing_query_is_refused_before_execution(source_url: str, sql: str) -> None:
    """Verify INSERT/UPDATE/DELETE/DROP/ATTACH/PRAGMA/two statements are refused, DB unchanged."""
    before = snapshot(source_url)
    with pytest.raises(InputError) as refused:
        run_query(source_url, sql, run_date=RUN_DATE)
    assert not isinstance(refused.value, SourceError)  # refused by the check, not the database
    assert "only" in str(refused.value)
    assert snapshot(source_url) == before


def test_database_itself_refuses_writes_that_slip_past(source_url: str) -> None:
    """Verify the read-only connection refuses an INSERT even without the static check and
    without the SELECT wrapper; with the wrapper the server's parser refuses it first."""
    before = snapshot(source_url)
    with pytest.raises(SourceError, match=r"read-only|readonly|read only"):
        execute_text(source_url, REFUSED["insert"], {})
    with pytest.raises(SourceError, match="syntax error"):
        execute(source_url, REFUSED["insert"], {})
    assert snapshot(source_url) == before


def test_select_with_parameters_returns_rows(source_url: str) -> None:
    """Verify :run_date and a user parameter are bound and rows come back as strings."""
    sql = (
        "SELECT email, name, joined FROM contacts "
        "WHERE joined = :run_date AND name <> :skip ORDER BY email"
    )
    result = run_query(source_url, sql, values={"skip": "Carl"}, run_date=RUN_DATE)
    assert result.columns == ["email", "name", "joined"]
    assert result.rows == [{"email": "bob@example.com", "name": "Bob", "joined": "2026-03-04"}]
    assert result.total == 1


def test_with_select_is_allowed(source_url: str) -> None:
    """Verify WITH … SELECT runs."""
    sql = "WITH recent AS (SELECT * FROM contacts WHERE name <> 'Ann') SELECT email FROM recent"
    assert run_query(source_url, sql, run_date=RUN_DATE).total == 2


def test_sql_error_is_an_error_not_zero_rows(source_url: str) -> None:
    """Verify a query on a missing table raises SourceError naming the cause."""
    with pytest.raises(SourceError, match=r"no_such_table|no such table|does not exist"):
        run_query(source_url, "SELECT * FROM no_such_table", run_date=RUN_DATE)


def test_missing_parameter_is_named(source_url: str) -> None:
    """Verify a parameter without value is an error naming it."""
    with pytest.raises(InputError, match="parameter :region has no value"):
        run_query(source_url, "SELECT * FROM contacts WHERE name = :region", run_date=RUN_DATE)


def test_row_cap_is_an_error(source_url: str) -> None:
    """Verify a result above the row cap is refused, not cut short."""
    with pytest.raises(SourceError, match="row cap of 2"):
        run_query(source_url, "SELECT * FROM contacts", run_date=RUN_DATE, row_cap=2)


def test_slow_query_times_out(source_url: str) -> None:
    """Verify a query running past the timeout is stopped with an error."""
    if source_url.startswith("sqlite"):
        sql = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
        )
    else:
        sql = "SELECT pg_sleep(10)"
    with pytest.raises(SourceError, match="took too long"):
        run_query(source_url, sql, run_date=RUN_DATE, timeout_s=0.3)


def test_unreachable_database_is_an_error_with_masked_url() -> None:
    """Verify a connection error is a SourceError whose message hides the password."""
    url = "postgresql+psycopg://reader:s3cret@127.0.0.1:1/crm"
    with pytest.raises(SourceError) as failed:
        run_query(url, "SELECT 1", run_date=RUN_DATE, timeout_s=2)
    assert "s3cret" not in str(failed.value)
    assert masked(url) in str(failed.value)


def test_missing_sqlite_file_is_an_error(tmp_path: Path) -> None:
    """Verify mode=ro does not create a missing SQLite file: it is an error."""
    with pytest.raises(SourceError, match="unable to open"):
        run_query(f"sqlite:///{tmp_path / 'nope.db'}", "SELECT 1", run_date=RUN_DATE)
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("SELECT * FROM t WHERE a = ':not_a_param' AND b = :real", ["real"]),
        ("SELECT x::date FROM t WHERE d = :today", ["today"]),
        ("select 'DELETE; DROP' as words", []),
        ('SELECT "update" FROM t', []),
        ("/* DELETE */ SELECT 1", []),
        ("SELECT 1;", []),
    ],
)
def test_quoted_and_commented_words_do_not_count(sql: str, params: list[str]) -> None:
    """Verify words inside quotes and comments neither refuse a query nor become parameters."""
    assert check_read_only(sql) == params
