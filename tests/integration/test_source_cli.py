"""`python -m outreach_core source test`, the Test query button's twin, run as a subprocess:
rows printed, attacks refused with exit 2 and nothing changed, the URL kept out of argv."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.sql_victims import FUNCTIONS, HIDING, PAYLOADS, UNTOUCHED, Victim, victim

from conftest import cli_env, run_cli

__all__ = ["victim"]  # the fixture, imported for pytest

CLI_ATTACKS = {
    **{
        f"{how}, copy to program": HIDING[how].replace("{payload}", PAYLOADS["copy to program"])
        for how in HIDING
    },
    "escape string, drop table": HIDING["escape string"].replace(
        "{payload}", PAYLOADS["drop table"]
    ),
    "nested comment, insert": HIDING["nested comment"].replace("{payload}", PAYLOADS["insert"]),
    **{name: FUNCTIONS[name] for name in ("pg_terminate_backend", "pg_read_file", "advisory lock")},
}


@pytest.mark.parametrize("attack", CLI_ATTACKS.values(), ids=CLI_ATTACKS.keys())
def test_source_test_refuses_attacks_with_exit_2(
    tmp_path: Path, victim: Victim, attack: str
) -> None:
    """Verify each attack given to `source test` (URL from OUTREACH_SOURCE_URL) exits 2 with
    the refusal, prints no rows, and leaves the victim table, marker and bystander alone."""
    env = cli_env(tmp_path, OUTREACH_SOURCE_URL=victim.url)
    result = run_cli(tmp_path, "source", "test", victim.fill(attack), env=env)
    assert result.returncode == 2, result.stderr
    assert "only one statement is allowed" in result.stderr or "beyond reading" in result.stderr
    assert "rows in" not in result.stdout
    assert victim.state() == UNTOUCHED


def test_source_test_prints_the_first_rows_with_parameters(tmp_path: Path) -> None:
    """Verify a SQLite query with --param prints the count and a small table, exit 0."""
    crm = tmp_path / "crm.db"
    with sqlite3.connect(crm) as conn:
        conn.execute("CREATE TABLE people (email TEXT, name TEXT, region TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?, ?)",
            [(f"p{n}@x.example", f"P{n}", "north" if n % 2 else "south") for n in range(30)],
        )
    result = run_cli(
        tmp_path, "source", "test", f"sqlite:///{crm}",
        "SELECT email, name FROM people WHERE region = :region ORDER BY email",
        "--param", "region=north", "--rows", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("15 rows in ") and lines[0].endswith("(first 3 shown)")
    assert lines[1].split() == ["email", "name"]
    assert [line.split() for line in lines[2:]] == [
        ["p11@x.example", "P11"],  # '1' sorts before '@'
        ["p13@x.example", "P13"],
        ["p15@x.example", "P15"],
    ]


@pytest.fixture
def reader_url(victim: Victim) -> Iterator[str]:
    """A login role with SELECT on the victim table only (dropped after); its source URL."""
    role = f"outreach_reader_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(victim.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{victim.schema}" TO {role}'))
        conn.execute(sa.text(f"GRANT SELECT ON victim TO {role}"))
    try:
        yield victim.url.replace("postgres@", f"{role}@", 1)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


def test_source_test_warns_about_a_superuser_and_not_a_reader(
    tmp_path: Path, victim: Victim, reader_url: str
) -> None:
    """Verify the superuser role gets a warning line and a SELECT-only role none; the URL
    comes from --url-env."""
    query = "SELECT id FROM victim ORDER BY id"
    env = cli_env(tmp_path, SUPER_URL=victim.url, READER_URL=reader_url)
    superuser = run_cli(tmp_path, "source", "test", "--url-env", "SUPER_URL", query, env=env)
    assert superuser.returncode == 0, superuser.stderr
    assert "warning: the source's database role postgres is a superuser" in superuser.stdout
    reader = run_cli(tmp_path, "source", "test", "--url-env", "READER_URL", query, env=env)
    assert reader.returncode == 0, reader.stderr
    assert "warning" not in reader.stdout + reader.stderr
    assert reader.stdout.startswith("3 rows in ")


def test_source_test_keeps_the_password_out_of_argv_and_output(tmp_path: Path) -> None:
    """Verify a password given in argv draws a note (use the environment), and no output,
    error or masked URL shows it, from argv or from the environment."""
    secret = "Cli-S3cret-31f0"
    url = f"postgresql+psycopg://reader:{secret}@127.0.0.1:1/crm?sslpassword={secret}"
    in_argv = run_cli(tmp_path, "source", "test", url, "SELECT 1 AS email")
    assert in_argv.returncode == 2
    assert "visible to other local users" in in_argv.stderr
    assert "reader:***@127.0.0.1:1/crm?sslpassword=***" in in_argv.stderr
    from_env = run_cli(
        tmp_path, "source", "test", "SELECT 1 AS email",
        env=cli_env(tmp_path, OUTREACH_SOURCE_URL=url),
    )  # fmt: skip
    assert from_env.returncode == 2
    assert "visible to other local users" not in from_env.stderr
    for result in (in_argv, from_env):
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["SELECT 1"], {}, "give the source URL: as an argument, with --url-env VAR, or in"),
        (["--url-env", "NOPE", "SELECT 1"], {}, "--url-env NOPE: that environment variable"),
        (["--url-env", "U", "sqlite:///x.db", "SELECT 1"], {"U": "x"}, "not both"),
        (["sqlite:///x.db", "SELECT 1", "--param", "oops"], {}, "write --param name=value"),
        (["mysql://u@h/db", "SELECT 1"], {}, "SQLite or PostgreSQL only"),
        (["sqlite:///x.db", "DELETE FROM t"], {}, "this query starts with DELETE"),
    ],
)
def test_source_test_bad_input_exits_2_saying_what_to_do(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    """Verify a missing URL, an unset variable, a malformed --param, an unsupported database
    and a writing query each exit 2 with a message naming the fix."""
    result = run_cli(tmp_path, "source", "test", *args, env=cli_env(tmp_path, **env))
    assert result.returncode == 2
    assert message in result.stderr


def test_source_test_stops_a_query_past_its_timeout(tmp_path: Path, victim: Victim) -> None:
    """Verify --timeout cuts a pg_sleep (exit 2, saying it took too long)."""
    env = cli_env(tmp_path, OUTREACH_SOURCE_URL=victim.url)
    result = run_cli(
        tmp_path, "source", "test", "SELECT pg_sleep(30) AS email", "--timeout", "1", env=env,
        timeout=20,
    )  # fmt: skip
    assert result.returncode == 2
    assert "took too long" in result.stderr
