"""A read-only SQL source is really read-only: the attacks, against the real PostgreSQL server
(and SQLite), each refused with the victim table, the marker file and a bystander connection
untouched.

Layer by layer: the check (`sources.try_query`, the Test query button); the server's parser
behind it (`execute`, the check skipped); the driver's one statement (`execute_text`, the
wrapper skipped too); the READ ONLY transaction and its timeouts; a saved source and a
recurring run re-running a stored query; the role warning.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.sql_runner import execute, execute_text
from outreach_core.adapters.store.tables import sql_sources
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import InputError, SourceError
from outreach_core.services import schedules, sources
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.sql_victims import FUNCTIONS, HIDING, PAYLOADS, UNTOUCHED, Victim, victim

__all__ = ["victim"]  # the fixture, imported for pytest

ATTACKS = {
    f"{how}, {what}": HIDING[how].replace("{payload}", PAYLOADS[what])
    for how in HIDING
    for what in PAYLOADS
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_test_query_refuses_a_hidden_second_statement(victim: Victim, attack: str) -> None:
    """Verify the Test query service refuses each hiding form before connecting, nothing
    changed (no row, no dropped table, no marker file, the bystander alive)."""
    started = time.monotonic()
    with pytest.raises(InputError, match="only one statement is allowed") as refused:
        sources.try_query(victim.url, victim.fill(attack), {}, timeout_s=2)
    assert not isinstance(refused.value, SourceError)
    assert time.monotonic() - started < 5  # the hidden pg_sleep(30) never ran
    assert victim.state() == UNTOUCHED


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_the_server_refuses_it_even_without_the_check(victim: Victim, attack: str) -> None:
    """Verify that with the check skipped the server still refuses each attack: the query is
    a subquery of SELECT * FROM (…), sent as one prepared statement."""
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"syntax error|multiple commands"):
        execute(victim.url, victim.fill(attack), {}, timeout_s=2)
    assert time.monotonic() - started < 5
    assert victim.state() == UNTOUCHED


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_the_driver_runs_one_statement_even_without_the_wrapper(
    victim: Victim, payload: str
) -> None:
    """Verify the extended protocol refuses a second statement, and so the COMMIT that would
    end the READ ONLY transaction, when the text reaches the driver as written."""
    attack = f"SELECT 1 AS email; COMMIT; {victim.fill(payload)}"
    with pytest.raises(SourceError, match="cannot insert multiple commands"):
        execute_text(victim.url, attack, {}, timeout_s=2)
    assert victim.state() == UNTOUCHED


@pytest.mark.parametrize("sql", FUNCTIONS.values(), ids=FUNCTIONS.keys())
def test_one_statement_acting_beyond_reading_is_refused(victim: Victim, sql: str) -> None:
    """Verify functions that act on the server inside READ ONLY (terminate or cancel a backend,
    read its files, advisory locks, settings, SQL run from text) and COPY … TO PROGRAM are
    refused, nothing changed."""
    with pytest.raises(InputError, match=r"beyond reading rows|only SELECT"):
        sources.try_query(victim.url, victim.fill(sql), {}, timeout_s=2)
    assert victim.state() == UNTOUCHED


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("COPY (SELECT 1) TO PROGRAM 'cat >/dev/null && touch {marker}'", "syntax error"),
        ("WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d", "top level"),
        ("DO $$ BEGIN DELETE FROM victim; END $$", "syntax error"),
        ("SET statement_timeout = 0", "syntax error"),
        ("COMMIT", "syntax error"),
        ("LOCK TABLE victim IN ACCESS EXCLUSIVE MODE", "syntax error"),
    ],
)
def test_the_wrapper_refuses_what_is_not_a_query(victim: Victim, sql: str, refusal: str) -> None:
    """Verify the server's parser refuses a single non-query statement when the check is
    skipped: COPY TO PROGRAM and LOCK TABLE both run inside a READ ONLY transaction, so this
    layer matters."""
    with pytest.raises(SourceError, match=refusal):
        execute(victim.url, victim.fill(sql), {}, timeout_s=2)
    assert victim.state() == UNTOUCHED


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("SELECT * FROM victim FOR UPDATE", "read-only transaction"),
        ("WITH d AS (DELETE FROM victim RETURNING *) SELECT * FROM d", "read-only transaction"),
        ("SELECT pg_sleep(30)", "took too long"),
    ],
)
def test_the_transaction_is_read_only_and_bounded(victim: Victim, sql: str, refusal: str) -> None:
    """Verify the transaction refuses writes and locks and stops a long query at its timeout,
    with the check and the wrapper both skipped."""
    started = time.monotonic()
    with pytest.raises(SourceError, match=refusal):
        execute_text(victim.url, sql, {}, timeout_s=1)
    assert time.monotonic() - started < 10
    assert victim.state() == UNTOUCHED


def test_a_query_sleeping_past_the_timeout_is_stopped(victim: Victim) -> None:
    """Verify pg_sleep beyond the source's timeout is cut by statement_timeout."""
    started = time.monotonic()
    with pytest.raises(SourceError, match="took too long"):
        sources.try_query(victim.url, "SELECT pg_sleep(30) AS email", {}, timeout_s=1)
    assert time.monotonic() - started < 10


def tamper(ws: Workspace, source_id: int, query: str) -> None:
    """Store a query the service would refuse, as a source saved by an older version."""
    with ws.db.begin() as conn:
        conn.execute(
            sa.update(sql_sources).where(sql_sources.c.id == source_id).values(query=query)
        )


SAVED = {
    "escape string, copy to program": ATTACKS["escape string, copy to program"],
    "nested comment, drop table": ATTACKS["nested comment, drop table"],
    "dollar quote, insert": ATTACKS["dollar quote, insert"],
    "pg_terminate_backend": FUNCTIONS["pg_terminate_backend"],
    "pg_read_file": FUNCTIONS["pg_read_file"],
}


@pytest.mark.parametrize("attack", SAVED.values(), ids=SAVED.keys())
def test_a_saved_source_is_refused_at_save_and_when_run(
    sqlite_workspace: Workspace, victim: Victim, attack: str
) -> None:
    """Verify saving the attack is refused, and a stored one is refused when run."""
    with pytest.raises(InputError):
        sources.save_source(
            sqlite_workspace, name="x", url=victim.url, query=victim.fill(attack), values={},
            actor="test",
        )  # fmt: skip
    saved = sources.save_source(
        sqlite_workspace, name="crm", url=victim.url, query="SELECT 'a@x.example' AS email",
        values={}, actor="test",
    )  # fmt: skip
    tamper(sqlite_workspace, saved.id, victim.fill(attack))
    with pytest.raises(InputError):
        sources.run_source(sqlite_workspace, saved.id)
    assert victim.state() == UNTOUCHED


def test_a_recurring_run_of_a_tampered_source_fails_with_the_refusal(
    sqlite_workspace: Workspace, victim: Victim, tmp_path: Path
) -> None:
    """Verify a workflow run re-running a stored attack fails, saying why, nothing changed."""
    ws = sqlite_workspace
    saved = sources.save_source(
        ws, name="crm", url=victim.url, query="SELECT 'a@x.example' AS email, id FROM victim",
        values={}, actor="test",
    )  # fmt: skip
    audience = sources.save_recurring_audience(ws, saved.id, name="crm", actor="test")
    template = services.save_template(
        ws, "hello", TemplateSource("Hi", None, "Hello"), actor="test"
    )
    engine = services.save_engine(
        ws, name="outbox", url=f"outbox://{tmp_path}/outbox", from_email="team@example.com",
        from_name="Team", actor="test",
    )  # fmt: skip
    workflow = services.create_workflow(
        ws, name="daily", audience_id=audience.id, template_id=template.id, engine_id=engine.id,
        options=SendOptions(rate=0, skip_mx=True), actor="test",
    )  # fmt: skip
    tamper(ws, saved.id, victim.fill(ATTACKS["escape string continued, copy to program"]))
    run_id = schedules.trigger_workflow(ws, workflow_id=workflow.id, actor="test")
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.FAILED
    assert "only one statement is allowed" in (run.status_reason or "")
    assert victim.state() == UNTOUCHED


@pytest.fixture
def reader(victim: Victim, postgres_server: str) -> Iterator[tuple[str, str]]:
    """A login role granted SELECT on the victim table only, dropped afterwards; yields
    (its source URL, its name)."""
    role = f"outreach_reader_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(victim.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{victim.schema}" TO {role}'))
        conn.execute(sa.text(f"GRANT SELECT ON victim TO {role}"))
    url = victim.url.replace("postgres@", f"{role}@", 1)
    assert url != victim.url and postgres_server in victim.url
    try:
        yield url, role
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()


def test_a_superuser_source_is_warned_about(victim: Victim) -> None:
    """Verify the test server's role postgres (a superuser) gets a warning with the query."""
    result = sources.try_query(victim.url, "SELECT id FROM victim", {})
    assert result.total == 3
    assert result.warnings == [
        "the source's database role postgres is a superuser: give SQL sources a role that "
        "can only read (GRANT SELECT on the tables they need, nothing else)"
    ]


def test_a_read_only_role_gets_no_warning_and_a_writer_does(
    victim: Victim, reader: tuple[str, str]
) -> None:
    """Verify a role with SELECT only reads without a warning, and the same role is warned
    about once granted INSERT on a table (naming it), or membership of a server-file role."""
    url, role = reader
    result = sources.try_query(url, "SELECT id FROM victim ORDER BY id", {})
    assert [r["id"] for r in result.rows] == ["1", "2", "3"]
    assert result.warnings == []
    admin = sa.create_engine(victim.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"GRANT INSERT ON victim TO {role}"))
    admin.dispose()
    [warning] = sources.try_query(url, "SELECT id FROM victim", {}).warnings
    assert f"role {role} can write" in warning and f"{victim.schema}.victim" in warning
    admin = sa.create_engine(victim.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"REVOKE INSERT ON victim FROM {role}"))
        conn.execute(sa.text(f"GRANT pg_read_server_files TO {role}"))
    admin.dispose()
    [warning] = sources.try_query(url, "SELECT id FROM victim", {}).warnings
    assert f"role {role} is a member of pg_read_server_files:" in warning


def test_a_password_in_the_query_string_is_masked_in_display_audit_and_errors(
    sqlite_workspace: Workspace,
) -> None:
    """Verify ?password= (and sslpassword) never show: the saved source, the audit log and
    a connection error."""
    secret = "Query-S3cret-77"
    url = f"postgresql+psycopg://reader@127.0.0.1:1/crm?password={secret}&sslpassword={secret}"
    saved = sources.save_source(
        sqlite_workspace, name="crm", url=url, query="SELECT 1 AS email", values={}, actor="t"
    )
    assert secret not in saved.display_url and "password=***" in saved.display_url
    with pytest.raises(SourceError) as failed:
        sources.run_source(sqlite_workspace, saved.id)
    assert secret not in str(failed.value)
    with sqlite_workspace.db.connect() as conn:
        stored = " ".join(
            str(v) for table in ("audit_log", "sql_sources")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")) for v in row
        )  # fmt: skip
    assert secret not in stored


SQLITE_ATTACKS = {
    "no nested comments": "SELECT 1 AS email /* /* */ ; {payload}; /* */",
    "no escape strings": "SELECT '\\' AS email; {payload}; SELECT '' --'",
    "bracket identifier": "SELECT 1 AS [a'] ; {payload}; SELECT [']",
    "plain": "SELECT 1 AS email; {payload}",
}
SQLITE_PAYLOADS = {
    "insert": "INSERT INTO victim VALUES (666)",
    "drop table": "DROP TABLE victim",
    "attach": "ATTACH DATABASE '{new}' AS other",
}


@pytest.fixture
def sqlite_victim(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "crm.db") as conn:
        conn.execute("CREATE TABLE victim (id INTEGER)")
        conn.executemany("INSERT INTO victim VALUES (?)", [(1,), (2,), (3,)])
    return f"sqlite:///{tmp_path / 'crm.db'}"


def sqlite_state(url: str) -> list[tuple[str, int]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT 'victim', id FROM victim ORDER BY id").fetchall()


@pytest.mark.parametrize("how", SQLITE_ATTACKS.values(), ids=SQLITE_ATTACKS.keys())
@pytest.mark.parametrize("what", SQLITE_PAYLOADS.values(), ids=SQLITE_PAYLOADS.keys())
def test_sqlite_attacks_are_refused_at_every_layer(
    sqlite_victim: str, tmp_path: Path, how: str, what: str
) -> None:
    """Verify on SQLite: the check refuses; skipped, the wrapper refuses; skipped too,
    sqlite3 runs one statement; the file stays as it was and no attached file appears."""
    before = sqlite_state(sqlite_victim)
    attack = how.replace("{payload}", what.replace("{new}", str(tmp_path / "new.db")))
    with pytest.raises(InputError, match="only one statement"):
        sources.try_query(sqlite_victim, attack, {})
    with pytest.raises(SourceError, match=r"syntax error|one statement at a time"):
        execute(sqlite_victim, attack, {})
    with pytest.raises(SourceError, match="one statement at a time"):
        execute_text(sqlite_victim, attack, {})
    assert sqlite_state(sqlite_victim) == before
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    "sql",
    ["SELECT load_extension('/tmp/evil') AS email", "SELECT writefile('/tmp/x', 'y') AS email"],
)
def test_sqlite_functions_beyond_reading_are_refused(sqlite_victim: str, sql: str) -> None:
    """Verify SQLite's extension and file functions are refused by the check."""
    with pytest.raises(InputError, match="beyond reading rows"):
        sources.try_query(sqlite_victim, sql, {})
