"""Control characters in contact rows, on SQLite and PostgreSQL: removed from values with a
note, the row refused with the reason when the address holds one, and the rest sent; through
`send` (a CLI process), through an import, and in the rows a SQL audience returns at freeze.

PostgreSQL refuses NUL in text: before this, one such cell failed the freeze with DataError.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_file, sort_rows
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import sources
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from conftest import cli_env, run_cli

ACTOR = "test"
#: an address holding a NUL, one holding a unit separator at its end (which trimming used to
#: hide), values holding NUL, BEL and DEL, and a multi-line value that stays as it is
CONTACTS = (
    b"email,name,city\n"
    b"ann@example.com,A\x00nn,Paris\n"
    b"bob\x00@example.com,Bob,Rome\n"
    b'carl@example.com,C\x07arl\x7f,"Line 1\nLine 2"\n'
    b"dee@example.com\x1f,Dee,Oslo\n"
    b"eve@example.com,Eve,Kyiv\n"
)
SENT = {"ann@example.com", "carl@example.com", "eve@example.com"}
REFUSED = {
    "bob@example.com": "the address holds 1 control character (U+0000); correct the email cell",
    "dee@example.com": "the address holds 1 control character (U+001F); correct the email cell",
}


def template_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tpl"
    folder.mkdir(exist_ok=True)
    (folder / "subject.txt").write_text("Hi {{ name }}")
    (folder / "body.txt").write_text("Hello {{ name }} from {{ city }}")
    return folder


def check_outbox(outbox: Path) -> None:
    """Exactly the clean rows were mailed, once each, with their values cleaned."""
    mails = {
        p.name.split("-", 1)[1].removesuffix(".eml"): p.read_bytes() for p in message_files(outbox)
    }
    assert set(mails) == SENT
    assert b"\x00" not in b"".join(mails.values()) and b"\x07" not in mails["carl@example.com"]
    assert b"Hello Ann from Paris" in mails["ann@example.com"]
    assert b"Hello Carl from Line 1" in mails["carl@example.com"]


def test_send_removes_control_characters_refuses_broken_addresses_and_sends_the_rest(
    db_url: str, tmp_path: Path
) -> None:
    """Verify `send` of a CSV holding NULs (a CLI process): it names each cleaned cell on
    stderr, completes the run, mails the three clean rows, and records the two rows whose
    address holds a control character as skipped with the reason (no NUL stored)."""
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes(CONTACTS)
    outbox = tmp_path / "outbox"
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    sent = run_cli(
        tmp_path, "send", str(contacts), "--template", str(template_dir(tmp_path)),
        "--engine", f"outbox://{outbox}", "--skip-mx", "--rate", "0", env=env,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    run_id = int(sent.stdout.splitlines()[0].removeprefix("run: "))
    assert 'note: row 1, column "name": 1 control character removed' in sent.stderr
    assert 'note: row 3, column "name": 2 control characters removed' in sent.stderr
    assert "Traceback" not in sent.stderr

    listed = json.loads(run_cli(tmp_path, "runs", "--json", env=env).stdout)
    [state] = [item for item in listed if item["run"]["id"] == run_id]
    assert state["run"]["status"] == RunStatus.COMPLETED
    assert (state["counts"]["sent"], state["counts"]["skipped"]) == (3, 2)
    check_outbox(outbox)

    out = tmp_path / "ledger.csv"
    exported = run_cli(tmp_path, "export", str(run_id), "--out", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    ledger = {row["email"]: row for row in csv.DictReader(io.StringIO(out.read_text()))}
    assert {e for e, row in ledger.items() if row["status"] == "sent"} == SENT
    assert {e: row["reason"] for e, row in ledger.items() if row["status"] == "skipped"} == {
        email: f"invalid_syntax: {reason}" for email, reason in REFUSED.items()
    }


def test_an_import_stores_clean_rows_only_and_they_are_sent(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the Audiences page's import: the report notes each cleaned cell and rejects
    the two rows with the reason; the audience stored holds no control character (tab and
    line breaks kept), and a run of it sends the three rows."""
    report = sort_rows(parse_file(CONTACTS, source="contacts.csv"))
    assert {r.email: r.reason for r in report.rejected} == REFUSED
    assert [(r.row, r.line) for r in report.rejected] == [(2, 3), (4, 6)]
    assert report.parsed.notes == [
        'row 1, column "name": 1 control character removed',
        'row 3, column "name": 2 control characters removed',
    ]
    workflow = services.setup_workflow(
        workspace, name="clean", parsed=report.audience_file(),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }} from {{ city }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}", from_email="team@example.com",
        from_name="Team", options=SendOptions(rate=0, skip_mx=True), actor=ACTOR,
    )  # fmt: skip
    stored = [values for _, values in services.audience_rows(workspace, workflow.audience_id)]
    assert stored == [
        {"email": "ann@example.com", "name": "Ann", "city": "Paris"},
        {"email": "carl@example.com", "name": "Carl", "city": "Line 1\nLine 2"},
        {"email": "eve@example.com", "name": "Eve", "city": "Kyiv"},
    ]
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.COMPLETED
    check_outbox(tmp_path / "outbox")


def test_rows_a_sql_audience_returns_at_freeze_are_cleaned_the_same_way(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify a recurring SQL audience whose query returns NULs when the run freezes (added
    after the audience was saved): the values are cleaned with a log line per cell, the row
    whose address holds a NUL is skipped with the reason, the others are sent."""
    crm = tmp_path / "crm.db"
    with sqlite3.connect(crm) as conn:
        conn.execute("CREATE TABLE contacts (email TEXT, name TEXT, city TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('ann@example.com', 'Ann', 'Paris')")
    source = sources.save_source(
        workspace, name="crm", url=f"sqlite:///{crm}",
        query="SELECT email, name, city FROM contacts ORDER BY rowid", values={}, actor=ACTOR,
    )  # fmt: skip
    audience = sources.save_recurring_audience(workspace, source.id, name="CRM", actor=ACTOR)
    with sqlite3.connect(crm) as conn:
        conn.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?)",
            [
                ("bob\x00@example.com", "Bob", "Rome"),
                ("carl@example.com", "C\x07arl\x7f", "Line 1\nLine 2"),
                ("eve@example.com", "Eve", "Ky\x00iv"),
            ],
        )
    template = services.save_template(
        workspace, "hello", TemplateSource("Hi {{ name }}", None, "Hello {{ name }} from {{ city }}"),
        actor=ACTOR,
    )  # fmt: skip
    engine = services.save_engine(
        workspace, name="outbox", url=f"outbox://{tmp_path}/outbox",
        from_email="team@example.com", from_name="Team", actor=ACTOR,
    )  # fmt: skip
    workflow = services.create_workflow(
        workspace, name="crm", audience_id=audience.id, template_id=template.id,
        engine_id=engine.id, options=SendOptions(rate=0, skip_mx=True), actor=ACTOR,
    )  # fmt: skip
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    with caplog.at_level(logging.WARNING, logger="outreach.executor"):
        run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.COMPLETED, run.status_reason
    logged = caplog.text
    assert (
        f"run {run_id}: SQL source 'crm': row 3, column \"name\": 2 control characters removed"
        in logged
    )
    assert 'row 4, column "city": 1 control character removed' in logged
    with workspace.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, run_id)}
    assert {e for e, d in ledger.items() if d.status is DeliveryStatus.SENT} == SENT
    assert ledger["bob@example.com"].status is DeliveryStatus.SKIPPED
    assert ledger["bob@example.com"].reason == f"invalid_syntax: {REFUSED['bob@example.com']}"
    assert ledger["carl@example.com"].variables["name"] == "Carl"
    assert ledger["eve@example.com"].variables["city"] == "Kyiv"
    check_outbox(tmp_path / "outbox")
