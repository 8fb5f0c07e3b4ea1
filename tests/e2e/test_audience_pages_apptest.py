"""The Audiences and Dry run pages under AppTest, DNS answered by the loopback server."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.ui.views import plain
from tests.dns_server import DnsServer
from tests.e2e.dashboard import HOME, keyed, open_test_workspace
from tests.sql_victims import HIDING, PAYLOADS, UNTOUCHED, Victim, victim

__all__ = ["victim"]  # the fixture, imported for pytest

UPLOAD = (
    "\ufeffE-mail;Name\n"
    "ann@mx-ok.example;Ann\n"
    "ANN@mx-ok.example;Ann twice\n"
    "\n"
    ";Nobody\n"
    "bob@null-mx.example;Bob\n"
    "carl@a-only.example;Carl\n"
).encode()


@pytest.fixture
def dns_env(data_dir: Path, dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's resolver asks the loopback DNS server."""
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", dns_server.nameserver)
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "0.5")
    return data_dir


def open_page(script: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(script).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_audiences_page_counts_an_uploaded_csv_and_imports_it(dns_env: Path) -> None:
    """Verify upload -> counts (rows, imported, rejected, duplicates), rejected rows, import."""
    at = open_page("pages/audiences.py")
    assert at.title[0].value == "Audiences"
    at.file_uploader(key="upload").upload("people.csv", UPLOAD, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Rows": "5", "Imported": "3", "Rejected": "1", "Duplicates": "1"}
    assert keyed(at.selectbox, "email_col").value == "E-mail"
    rejected = at.dataframe[1].value
    # every column of the file, so the CSV can be fixed and imported again
    assert rejected.to_dict("records") == [
        {"row": 3, "line": 5, "email": "", "reason": "no email", "E-mail": "", "Name": "Nobody"}
    ]
    keyed(at.text_input, "name").set_value("people").run()
    at.button(key="import").click().run()
    assert "Imported 'people': 3 rows to send to, 1 rejected, 1 duplicates" in at.success[0].value
    ws = open_test_workspace(dns_env)
    try:  # every row kept, with its status, as the demo audience does
        assert [a.row_count for a in services.list_audiences(ws)] == [5]
    finally:
        ws.close()


def test_audiences_page_sql_test_query_imports_and_refuses_writes(
    dns_env: Path, tmp_path: Path
) -> None:
    """Verify Test query previews a SELECT, imports every row of it with its status (shown
    under Saved audiences as an uploaded file's are), and refuses a DELETE."""
    import sqlite3

    crm = tmp_path / "crm.db"
    with sqlite3.connect(crm) as conn:
        conn.execute("CREATE TABLE people (email TEXT, name TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?)",
            [("a@x.example", "A"), ("A@x.example", "A again"), (None, "Nobody")],
        )
    at = open_page("pages/audiences.py")
    at.text_input(key="sql_url").set_value(f"sqlite:///{crm}")
    at.text_area(key="sql_query").set_value("SELECT email, name FROM people").run()
    at.button(key="sql_test").click().run()
    assert at.success[0].value.startswith("3 rows")
    at.text_input(key="sql_audience").set_value("from crm").run()
    at.button(key="sql_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[1].value == plain(
        "Imported 'from crm': 1 rows to send to, 1 rejected, 1 duplicates (3 rows kept, with "
        "their status under Saved audiences)."
    )
    saved = at.dataframe[-1].value  # the Saved audiences tab, drawn after the import
    assert saved[["row", "email", "status", "reason", "name"]].values.tolist() == [
        [1, "a@x.example", "accepted", "", "A"],
        [2, "A@x.example", "duplicate", "same address as row 1", "A again"],
        [3, "", "rejected", "no email", "Nobody"],
    ]
    at.text_area(key="sql_query").set_value("DELETE FROM people").run()
    at.button(key="sql_test").click().run()
    assert "only SELECT or WITH … SELECT is allowed; this query starts with DELETE" in (
        at.error[0].value
    )


def test_audiences_page_warns_about_a_superuser_source_and_refuses_an_attack(
    dns_env: Path, victim: Victim
) -> None:
    """Verify Test query on PostgreSQL as the superuser postgres shows the rows and a warning
    to use a read-only role, and an escape-string attack is refused with nothing changed."""
    at = open_page("pages/audiences.py")
    at.text_input(key="sql_url").set_value(victim.url)
    at.text_area(key="sql_query").set_value("SELECT id AS email FROM victim").run()
    at.button(key="sql_test").click().run()
    assert at.success[0].value.startswith("3 rows")
    assert "database role postgres is a superuser" in at.warning[0].value
    attack = HIDING["escape string"].replace("{payload}", PAYLOADS["copy to program"])
    at.text_area(key="sql_query").set_value(victim.fill(attack)).run()
    at.button(key="sql_test").click().run()
    assert "only one statement is allowed" in at.error[0].value
    assert victim.state() == UNTOUCHED


def test_audiences_page_creates_a_recurring_audience_from_a_saved_source(
    dns_env: Path, tmp_path: Path
) -> None:
    """Verify a saved SQL source becomes an audience linked to it (re-queried by every run),
    and an empty name is refused with nothing saved."""
    import sqlite3

    crm = tmp_path / "crm.db"
    with sqlite3.connect(crm) as conn:
        conn.execute("CREATE TABLE people (email TEXT, name TEXT)")
        conn.executemany(
            "INSERT INTO people VALUES (?, ?)", [("a@x.example", "A"), ("b@x.example", "B")]
        )
    at = open_page("pages/audiences.py")
    at.text_input(key="sql_url").set_value(f"sqlite:///{crm}")
    at.text_area(key="sql_query").set_value("SELECT email, name FROM people").run()
    at.text_input(key="sql_name").set_value("crm people").run()
    at.button(key="sql_save").click().run()
    assert "Saved source 'crm people'" in at.success[0].value
    at.button(key="rec_create").click().run()
    assert at.error, "an empty audience name must be refused"
    at.text_input(key="rec_name").set_value("daily crm").run()
    at.button(key="rec_create").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Audience 'daily crm' re-runs 'crm people' for every run (2 rows today)." in [
        s.value for s in at.success
    ]
    ws = open_test_workspace(dns_env)
    try:
        (audience,) = services.list_audiences(ws)
        assert audience.name == "daily crm"
        assert audience.sql_source_id is not None
    finally:
        ws.close()


def test_dry_run_page_produces_the_table_with_statuses(dns_env: Path, tmp_path: Path) -> None:
    """Verify choosing a workflow and running shows counts and one table row per audience row."""
    ws = open_test_workspace(dns_env)
    try:
        services.setup_workflow(
            ws,
            name="weekly",
            parsed=parse_csv(UPLOAD, source="people.csv"),
            template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
            engine_url=f"outbox://{tmp_path / 'outbox'}",
            from_email="team@mx-ok.example",
            from_name="Team",
            options=SendOptions(),
            actor="test",
        )
    finally:
        ws.close()
    at = open_page("pages/dry_run.py")
    assert at.selectbox(key="dry_target").value == "Workflow: weekly"
    at.button(key="dry_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[-1].value  # the row-by-row table, below the skipped rows' expanders
    assert table["status"].tolist() == [
        "valid",
        "duplicate",
        "invalid_syntax",
        "null_mx",
        "valid",
    ]
    assert table["E-mail"].tolist()[0] == "ann@mx-ok.example"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["valid"] == "2" and metrics["null_mx"] == "1"
    assert any("No unsubscribe is set" in w.value for w in at.warning)  # SendOptions(): none
    at.multiselect(key="dry_statuses").set_value(["null_mx"]).run()
    assert at.dataframe[-1].value["email_normalized"].tolist() == ["bob@null-mx.example"]
