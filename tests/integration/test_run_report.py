"""The run report: mailed to a real SMTP server when REPORT_* is set, a log line otherwise."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from smtp_server import SmtpTestServer

ROWS = [
    {"email": "ann@example.org", "name": "Ann"},
    {"email": '=HYPERLINK("http://evil.example")', "name": "Formula"},  # invalid: skipped
    {"email": "bob@example.org"},  # no name: render error, skipped at the freeze
    {"email": "carl@example.org", "name": "Carl"},
]


def run_once(ws: Workspace, tmp_path: Path) -> int:
    workflow = services.setup_workflow(
        ws,
        name="<b>Spring</b>",
        parsed=ParsedFile("c.csv", ["email", "name"], "email", ROWS),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0),
        actor="test",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id


def test_report_is_mailed_with_counts_escaped_values_and_the_csv(tmp_path: Path) -> None:
    """Verify with REPORT_* set: one mail to REPORT_EMAIL_TO with state, counts, skip reasons,
    delivery rate, HTML-escaped names, and a CSV whose formula-like cell is neutralised."""
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
            run_id = run_once(ws, tmp_path)
        finally:
            ws.close()
        reports = [r for r in server.handler.received if r.rcpt_tos == ["boss@example.com"]]
    assert len(reports) == 1
    message = reports[0].message
    assert message["Subject"] == f"Outreach run {run_id} (<b>Spring</b>): COMPLETED, 2 sent"
    text = message.get_body(("plain",)).get_content()
    assert "4 recipients: 2 sent, 0 failed, 0 deferred, 0 unknown, 2 skipped" in text
    assert "invalid_syntax 1" in text and "render_error 1" in text
    assert "Delivery rate (sent of attempted): 100.0%" in text
    page = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;Spring&lt;/b&gt;" in page and "<b>Spring</b>" not in page
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == f"run-{run_id}.csv"
    table = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert len(table) == 4
    formula = next(r for r in table if "HYPERLINK" in r["email"])
    assert formula["email"].startswith("'=")


def test_without_report_settings_a_log_line_and_no_error(
    sqlite_workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify no REPORT_* settings: the run completes and one log line says no report was mailed."""
    with caplog.at_level(logging.INFO, logger="outreach.report"):
        run_id = run_once(sqlite_workspace, tmp_path)
    assert f"run {run_id}: no run report mailed" in caplog.text
