"""The run report's mail transport: STARTTLS through the private Postfix (AUTH, its self-signed
certificate trusted through REPORT_SMTP_CAFILE), implicit TLS to a loopback TLS server
(aiosmtpd), and plaintext to a host that is not loopback refused before any connection unless
REPORT_SMTP_TLS=none asks for it. Failures are logged with what to do, never the password."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from outreach_core import services
from outreach_core.adapters.workspace import Workspace
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.conftest import wait_for
from tests.frozen_runs import queued_outbox_run
from tests.imap_server import self_signed_loopback_cert
from tests.postfix_server import USER, PostfixServer
from tests.smtp_server import RecordingHandler, free_port

#: TEST-NET-1 (RFC 5737): not loopback, and never reached: a connection to it is stopped below
REMOTE = "192.0.2.1"


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection tried to REMOTE during the test, each stopped before a packet leaves
    (any other address connects as usual)."""
    tried: list[tuple[str, int]] = []
    real = socket.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] == REMOTE:
            tried.append((address[0], int(address[1])))
            raise ConnectionRefusedError(111, "Connection refused (stopped by the test)")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return tried


def configure(ws: Workspace, **report: object) -> None:
    """REPORT_* for the workspace: mailed to boss@example.com, plus `report`."""
    ws.settings = ws.settings.model_copy(
        update={
            "report_email_to": "boss@example.com",
            "report_email_from": "outreach@example.com",
            **report,
        }
    )


def run_once(ws: Workspace, tmp_path: Path, name: str) -> int:
    """A small run through an outbox engine; its end mails the report."""
    run_id = queued_outbox_run(ws, tmp_path, name=name, emails=["ann@example.org"])
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id


def test_report_goes_through_postfix_with_starttls_and_auth(
    sqlite_workspace: Workspace, postfix: PostfixServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Verify the report reaches Postfix's Maildir over STARTTLS with AUTH, its certificate
    trusted through REPORT_SMTP_CAFILE, and the log names the transport."""
    caplog.set_level(logging.INFO, logger="outreach.report")
    configure(sqlite_workspace, report_smtp_host="127.0.0.1", report_smtp_port=postfix.port,
              report_smtp_tls="starttls", report_smtp_user=USER,
              report_smtp_password=postfix.password, report_smtp_cafile=str(postfix.cert))  # fmt: skip
    run_id = run_once(sqlite_workspace, tmp_path, "report-starttls")
    subject = f"Outreach run {run_id} (report-starttls): COMPLETED, 1 sent"

    wait_for(lambda: any(m["Subject"] == subject for m in postfix.delivered()),
             what="the report in Postfix's Maildir")  # fmt: skip
    report = next(m for m in postfix.delivered() if m["Subject"] == subject)
    assert report["To"] == "boss@example.com"
    assert next(report.iter_attachments()).get_filename() == f"run-{run_id}.csv"
    assert f"run {run_id}: run report mailed to boss@example.com via 127.0.0.1:" in caplog.text
    assert "(starttls)" in caplog.text and postfix.password not in caplog.text


def test_report_failures_through_postfix_say_what_to_set(
    sqlite_workspace: Workspace, postfix: PostfixServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Verify an untrusted certificate says to set REPORT_SMTP_CAFILE, a wrong password says
    to check REPORT_SMTP_USER/PASSWORD (and costs one AUTH), a plaintext attempt to a server
    that requires STARTTLS names the server's refusal; the password is never logged."""
    caplog.set_level(logging.INFO, logger="outreach.report")
    base = {"report_smtp_host": "127.0.0.1", "report_smtp_port": postfix.port,
            "report_smtp_user": USER, "report_smtp_tls": "starttls"}  # fmt: skip
    configure(sqlite_workspace, **base, report_smtp_password=postfix.password)
    run_id = run_once(sqlite_workspace, tmp_path, "report-failures")
    assert "the server's certificate is not trusted (self-signed certificate)" in caplog.text
    assert "set REPORT_SMTP_CAFILE=/path/to/ca.pem" in caplog.text

    before = postfix.log_text()
    wrong = "Wrong-Report-Pass"
    configure(sqlite_workspace, **base, report_smtp_password=wrong,
              report_smtp_cafile=str(postfix.cert))  # fmt: skip
    caplog.clear()
    assert not services.sending.report.mail_run_report(sqlite_workspace, run_id)
    assert "authentication failed (535" in caplog.text
    assert "check REPORT_SMTP_USER and REPORT_SMTP_PASSWORD" in caplog.text
    wait_for(lambda: "disconnect from" in postfix.log_text()[len(before) :],
             what="the end of the session in Postfix's log")  # fmt: skip
    assert postfix.log_text()[len(before) :].count("authentication failed") == 1

    configure(sqlite_workspace, **base | {"report_smtp_tls": "none", "report_smtp_user": None})
    caplog.clear()
    assert not services.sending.report.mail_run_report(sqlite_workspace, run_id)
    assert (
        f"could not be mailed via 127.0.0.1:{postfix.port} (none): the server requires TLS or a "
        "login first (530 5.7.0 Must issue a STARTTLS command first); set REPORT_SMTP_TLS="
    ) in caplog.text
    assert wrong not in caplog.text and postfix.password not in caplog.text
    assert "SMTPNotSupportedError" not in caplog.text


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RecordingHandler, int, Path]]:
    """aiosmtpd behind implicit TLS on 127.0.0.1 (a self-signed certificate of its own)."""
    cert, key = self_signed_loopback_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler, port = RecordingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        yield handler, port, cert
    finally:
        controller.stop()


def test_report_goes_with_implicit_tls_to_a_loopback_tls_server(
    sqlite_workspace: Workspace, tls_server: tuple[RecordingHandler, int, Path], tmp_path: Path
) -> None:
    """Verify REPORT_SMTP_TLS=ssl: the report arrives over implicit TLS (port given), the
    server's certificate trusted through REPORT_SMTP_CAFILE."""
    handler, port, cert = tls_server
    configure(sqlite_workspace, report_smtp_host="127.0.0.1", report_smtp_port=port,
              report_smtp_tls="ssl", report_smtp_cafile=str(cert))  # fmt: skip
    run_id = run_once(sqlite_workspace, tmp_path, "report-ssl")
    (received,) = [r for r in handler.received if r.rcpt_tos == ["boss@example.com"]]
    assert received.message["Subject"] == f"Outreach run {run_id} (report-ssl): COMPLETED, 1 sent"


def test_plaintext_to_a_remote_host_is_refused_before_connecting_unless_asked_for(
    sqlite_workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    attempts: list[tuple[str, int]],
) -> None:  # fmt: skip
    """Verify with REPORT_SMTP_TLS unset and no user, a report to a host that is not loopback is
    not sent: the log gives the reason and the settings that would send it, and no connection
    was even tried. With REPORT_SMTP_TLS=none the connection is tried (and blocked here)."""
    caplog.set_level(logging.INFO, logger="outreach.report")
    configure(sqlite_workspace, report_smtp_host=REMOTE, report_smtp_port=25)
    run_id = run_once(sqlite_workspace, tmp_path, "report-remote")
    assert (
        f"run {run_id}: the run report was not mailed: REPORT_SMTP_HOST {REMOTE} is not a "
        "loopback host and REPORT_SMTP_TLS is not set"
    ) in caplog.text
    assert "REPORT_SMTP_TLS=none to send it in plaintext anyway" in caplog.text
    assert attempts == []

    configure(sqlite_workspace, report_smtp_host=REMOTE, report_smtp_port=25,
              report_smtp_tls="none")  # fmt: skip
    caplog.clear()
    assert not services.sending.report.mail_run_report(sqlite_workspace, run_id)
    assert attempts == [(REMOTE, 25)]
    assert f"could not be mailed via {REMOTE}:25 (none): connection refused" in caplog.text
