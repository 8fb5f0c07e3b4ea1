"""Secrets never leak: a full run through an SMTP engine with a password, SendGrid and Mailgun
engines with API keys (and wrong ones, so errors are produced), an audience from a SQL source
whose URL has a password, and a mailed run report. Every log line, exception text, report,
CSV, CLI output and the database itself is searched for those secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import OutreachError
from outreach_core.services import compliance, run_summaries, sources
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from outreach_core.services.sending.report import build_report, mail_run_report

from conftest import POSTGRES_URL, cli_env, run_cli
from http_providers import FakeMailgun, FakeSendGrid
from smtp_server import RecordingHandler, free_port

SMTP_PASSWORD = "Smtp-S3cret-8f2a91"
SENDGRID_KEY = "SG.Leak-Check-7d1e55aa"
MAILGUN_KEY = "key-Leak-Check-0c9b3e"
SQL_PASSWORD = "Sql-S3cret-4b7d22"
REPORT_PASSWORD = "Report-S3cret-19ce03"
WRONG = "Wrong-S3cret-55aa01"
SECRETS = [SMTP_PASSWORD, SENDGRID_KEY, MAILGUN_KEY, SQL_PASSWORD, REPORT_PASSWORD, WRONG]
# the SQL source: no table needed, two recipients
QUERY = "SELECT 'ann@example.com' AS email, 'Ann' AS name UNION ALL SELECT 'bob@example.com', 'Bob'"
TEMPLATE = TemplateSource("Hello {{ name }}", "<p>Hello {{ name }}</p>", "Hello {{ name }}")


class AuthSmtp:
    """aiosmtpd that requires AUTH with one user and password (plain text on loopback)."""

    def __init__(self, user: str, password: str) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            ) == (user, password)
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            authenticator=authenticate, auth_require_tls=False,
        )  # fmt: skip

    def __enter__(self) -> AuthSmtp:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def find_secrets(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def servers() -> Iterator[tuple[AuthSmtp, FakeSendGrid, FakeMailgun]]:
    with (
        AuthSmtp("mailer", SMTP_PASSWORD) as smtp,
        FakeSendGrid(SENDGRID_KEY) as sendgrid,
        FakeMailgun(MAILGUN_KEY) as mailgun,
    ):
        yield smtp, sendgrid, mailgun


def test_a_full_run_leaks_no_secret_anywhere(
    workspace: Workspace,
    tmp_path: Path,
    postgres_server: str,
    servers: tuple[AuthSmtp, FakeSendGrid, FakeMailgun],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Verify no secret in logs, exceptions, reports, CSVs, mail, CLI output or the database."""
    caplog.set_level(logging.DEBUG)
    smtp, sendgrid, mailgun = servers
    workspace.settings = workspace.settings.model_copy(
        update={
            "report_email_to": "ops@example.com",
            "report_smtp_host": "127.0.0.1",
            "report_smtp_port": smtp.port,
            "report_smtp_user": "mailer",
            "report_smtp_password": REPORT_PASSWORD,
        }
    )
    seen: list[str] = []
    sql_url = POSTGRES_URL.replace("postgres@", f"postgres:{SQL_PASSWORD}@", 1)
    source = sources.save_source(
        workspace, name="crm", url=sql_url, query=QUERY, values={}, actor="t"
    )
    parsed = sources.as_parsed_file(
        sources.run_source(workspace, source.id), source="crm", email_column=None
    )
    seen.append(repr(source))
    engines = {
        "smtp": f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}?tls=none",
        "sendgrid": f"sendgrid://{SENDGRID_KEY}@?endpoint={sendgrid.endpoint}",
        "mailgun": f"mailgun://{MAILGUN_KEY}@mg.example.com?endpoint={mailgun.endpoint}",
        "smtp-wrong": f"smtp://mailer:{WRONG}@127.0.0.1:{smtp.port}?tls=none",
        "sendgrid-wrong": f"sendgrid://{WRONG}@?endpoint={sendgrid.endpoint}",
        "mailgun-wrong": f"mailgun://{WRONG}@mg.example.com?endpoint={mailgun.endpoint}",
    }
    run_ids = []
    for name, url in engines.items():
        workflow = services.setup_workflow(
            workspace, name=name, parsed=ParsedFile(parsed.source, parsed.columns,
            parsed.email_column, parsed.rows), template=TEMPLATE, engine_url=url,
            from_email="team@example.com", from_name="Team",
            options=SendOptions(rate=0, max_attempts=1, skip_mx=True), actor="t",
        )  # fmt: skip
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="t")
        run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
        run_ids.append(run_id)
        try:
            seen.append(services.test_engine_connection(workspace, workflow.engine_id))
        except OutreachError as exc:
            seen.append(str(exc))

    # the good engines sent, the wrong keys failed (so error paths ran too)
    sent = {s.run.id: s.counts.sent for s in services.recent_runs(workspace)}
    assert [sent[r] for r in run_ids] == [2, 2, 2, 0, 0, 0]
    assert sendgrid.sent_to("ann@example.com") and mailgun.sent_to("bob@example.com")
    # the report goes out over STARTTLS, which this server lacks: the failure is logged
    assert not mail_run_report(workspace, run_ids[0])
    assert f"could not be mailed via 127.0.0.1:{smtp.port}" in caplog.text

    for run_id in run_ids:
        summary = services.run_summary(workspace, run_id)
        seen += [repr(summary), str(summary.run.status_reason)]
        seen.append(run_summaries.run_outcome_csv(workspace, run_id))
        report = build_report(summary, run_summaries.run_outcome_rows(workspace, run_id))
        seen += [report.subject, report.text, report.html, report.csv]
    seen += [repr(e) for e in services.list_engines(workspace)]
    seen += [repr(s) for s in sources.list_sources(workspace)]
    seen.append(compliance.export_suppressions_csv(workspace))
    seen.append(repr(compliance.audit_entries(workspace)))
    seen.append(repr(workspace.settings) + repr(workspace))
    seen += [item.data.decode("utf-8", "replace") for item in smtp.handler.received]
    seen.append(caplog.text)
    with workspace.db.connect() as conn:
        seen += [
            repr(row) for table in tables.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        ]  # fmt: skip

    text = "\n".join(seen)
    # the error paths ran and their messages are among the searched texts
    assert "authentication failed (535)" in text and "HTTP 401 Forbidden" in text
    assert find_secrets(text) == []
    assert len(smtp.handler.received) == 2


def test_cli_output_and_errors_hold_no_secret(tmp_path: Path) -> None:
    """Verify `send` with a password in --engine, `runs` and `export`: stdout and stderr
    never show it, whether the login works or is refused."""
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hello {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    outputs = []
    debug_env = cli_env(tmp_path, LOG_LEVEL="DEBUG")
    with AuthSmtp("mailer", SMTP_PASSWORD) as smtp:
        for password, code in ((SMTP_PASSWORD, 0), (WRONG, None)):
            done = run_cli(
                tmp_path, "send", str(contacts), "--template", str(template), "--engine",
                f"smtp://mailer:{password}@127.0.0.1:{smtp.port}?tls=none",
                "--from", "Team <team@example.com>", "--rate", "0", "--skip-mx", env=debug_env,
            )  # fmt: skip
            if code is not None:
                assert done.returncode == code, done.stderr
            else:
                assert done.returncode != 0
            outputs += [done.stdout, done.stderr]
        for command in (["runs"], ["export", "1", "--out", str(tmp_path / "run1.csv")]):
            done = run_cli(tmp_path, *command, env=debug_env)
            assert done.returncode == 0, done.stderr
            outputs += [done.stdout, done.stderr]
    outputs.append((tmp_path / "run1.csv").read_text())
    assert len(smtp.handler.received) == 2
    assert find_secrets("\n".join(outputs)) == []
