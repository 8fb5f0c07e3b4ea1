"""Contacts whose values are spreadsheet formulas, through every CSV the product writes:
`validate --out`, `dry-run --out` and `export` (the CLI as a subprocess), the mailed run
report's attachment and the suppression export. In each file, every such cell starts with an
apostrophe, and a file read back gives the values it was given."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions, SuppressionReason
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import compliance
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.csv_attacks import (
    ATTACKS,
    SIGNED_ADDRESSES,
    assert_no_formula,
    cells,
    contacts_csv,
)

from conftest import run_cli
from smtp_server import SmtpTestServer


def setup(ws: Workspace, tmp_path: Path, name: str = "formulas") -> int:
    workflow = services.setup_workflow(
        ws,
        name=name,
        parsed=parse_csv(contacts_csv(), source="contacts.csv"),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0),
        actor="test",
    )
    return workflow.id


def run_workflow(ws: Workspace, workflow_id: int) -> int:
    run_id = services.queue_run(ws, workflow_id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id


def test_validate_out_neutralises_every_formula(tmp_path: Path) -> None:
    """Verify `validate FILE --out OUT.csv` writes the names, the attacked header and the
    address-as-formula with an apostrophe; signed addresses too."""
    source, out = tmp_path / "contacts.csv", tmp_path / "checked.csv"
    source.write_bytes(contacts_csv())
    done = run_cli(tmp_path, "validate", str(source), "--out", str(out), "--skip-mx")
    assert done.returncode == 0, done.stderr
    text = out.read_bytes().decode("utf-8")
    assert_no_formula(text, expect=[*ATTACKS, *SIGNED_ADDRESSES])
    assert len(cells(text)) == 1 + len(ATTACKS) + len(SIGNED_ADDRESSES) + 1


def test_dry_run_out_neutralises_every_formula(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """Verify `dry-run WORKFLOW --out OUT.csv` does the same for a workflow's audience."""
    setup(sqlite_workspace, tmp_path)
    out = tmp_path / "dry.csv"
    done = run_cli(tmp_path, "dry-run", "formulas", "--out", str(out), "--skip-mx")
    assert done.returncode == 0, done.stderr
    assert_no_formula(out.read_bytes().decode("utf-8"), expect=[*ATTACKS, *SIGNED_ADDRESSES])


def test_export_neutralises_every_formula(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """Verify `export RUN --out OUT.csv` writes the formula address (a skipped row) and the
    signed addresses (sent) with an apostrophe."""
    run_id = run_workflow(sqlite_workspace, setup(sqlite_workspace, tmp_path))
    out = tmp_path / "run.csv"
    done = run_cli(tmp_path, "export", str(run_id), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_bytes().decode("utf-8")
    assert_no_formula(text, expect=[ATTACKS[1], *SIGNED_ADDRESSES])
    statuses = {row["email"]: row["status"] for row in csv.DictReader(io.StringIO(text))}
    assert statuses["'-ann@example.org"] == "sent" and statuses["'" + ATTACKS[1]] == "skipped"


def test_the_mailed_report_attachment_neutralises_every_formula(tmp_path: Path) -> None:
    """Verify the run report mailed to a real SMTP server carries a CSV with no formula."""
    with SmtpTestServer() as server:
        settings = Settings(
            _env_file=None,
            OUTREACH_DATA_DIR=tmp_path / "data",
            REPORT_EMAIL_TO="boss@example.com",
            REPORT_EMAIL_FROM="outreach@example.com",
            REPORT_SMTP_HOST="127.0.0.1",
            REPORT_SMTP_PORT=server.port,
        )
        ws = open_workspace(settings)
        try:
            workflow_id = setup(ws, tmp_path)
            run_workflow(ws, workflow_id)
        finally:
            ws.close()
        (report,) = [r for r in server.handler.received if r.rcpt_tos == ["boss@example.com"]]
    attachment = next(report.message.iter_attachments())
    assert_no_formula(attachment.get_content(), expect=[ATTACKS[1], *SIGNED_ADDRESSES])


def test_the_suppression_export_neutralises_and_imports_back(tmp_path: Path) -> None:
    """Verify the suppression export writes signed addresses and a formula source with an
    apostrophe, and importing that file elsewhere gives back the same addresses."""
    first = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=tmp_path / "one"))
    try:
        for address in SIGNED_ADDRESSES:
            compliance.suppress(
                first, address, reason=SuppressionReason.MANUAL, actor="t", source=ATTACKS[0]
            )
        text = compliance.export_suppressions_csv(first)
    finally:
        first.close()
    assert_no_formula(text, expect=[ATTACKS[0], *SIGNED_ADDRESSES])
    second = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=tmp_path / "two"))
    try:
        imported = compliance.import_suppressions(
            second, text.encode(), source="suppressions.csv", actor="t"
        )
        assert (imported.added, imported.errors) == (3, [])
        listed = {s.email_normalized for s in compliance.list_suppressions(second)}
    finally:
        second.close()
    assert listed == set(SIGNED_ADDRESSES)
