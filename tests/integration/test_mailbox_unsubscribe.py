"""Mailto unsubscribe requests read from a real IMAP server (Twisted's, on loopback) into the
suppression list, on SQLite and PostgreSQL: the reader in-process, the CLI command and the
scheduler daemon."""

from __future__ import annotations

import logging
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from pydantic import SecretStr

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.imap_url import parse_imap_url
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import Delivery, SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.domain.unsubscribe_links import MailtoLinks, token
from outreach_core.domain.unsubscribe_requests import MAX_MESSAGE_BYTES, Action, FlagReason
from outreach_core.entrypoints import cli
from outreach_core.entrypoints.daemon import MailboxReader, read_unsubscribes, tick
from outreach_core.errors import MailboxError
from outreach_core.services import compliance
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from outreach_core.services.unsubscribe_mailbox import read_mailbox
from tests.imap_server import ImapTestServer, TlsFront, self_signed_loopback_cert

from conftest import REPO, cli_env, make_settings, wait_for

PASSWORD = "imap-pw-7Hq2/never-logged"
WRONG_PASSWORD = "imap-pw-wrong-9Xk4-also-secret"
UNSUB = "unsub@example.com"
SEEN, FLAGGED = "\\Seen", "\\Flagged"


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    with ImapTestServer(user="unsub", password=PASSWORD) as server:
        yield server


def seed(ws: Workspace, outbox: Path) -> Workflow:
    rows = [{"email": f"Person{i}@Example.com"} for i in range(4)]
    return services.setup_workflow(
        ws,
        name="mailto",
        parsed=ParsedFile("contacts.csv", ["email"], "email", rows),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, unsubscribe_mailto=UNSUB, dedupe_window_hours=0),
        actor="test",
    )


def send(ws: Workspace, workflow: Workflow) -> dict[str, Delivery]:
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    with ws.db.connect() as conn:
        return {d.email_normalized: d for d in deliveries.list_deliveries(conn, run_id)}


def mailto_of(outbox: Path, email: str) -> str:
    """The List-Unsubscribe mailto URI of the message that was sent to `email`."""
    for path in message_files(outbox):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if str(message["To"]).lower() == email.lower():
            header = str(message["List-Unsubscribe"])
            return next(p.strip(" <>") for p in header.split(",") if "mailto:" in p)
    raise AssertionError(f"no message to {email}")


def request(mailto: str, *, sender: str, subject: str | None = None) -> bytes:
    """The message a mail client sends for a mailto URI (its subject unless told otherwise)."""
    parts = urlsplit(mailto)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = unquote(parts.path)
    message["Subject"] = parse_qs(parts.query)["subject"][0] if subject is None else subject
    message.set_content("Sent from my phone")
    return message.as_bytes()


def suppressed(ws: Workspace) -> dict[str, tuple[str, str | None]]:
    return {s.email_normalized: (s.reason, s.source) for s in compliance.list_suppressions(ws)}


def start_daemon(
    tmp_path: Path, log_path: Path, imap: ImapTestServer, **settings: str
) -> subprocess.Popen:
    """`scheduler_daemon.py` reading the test mailbox, its output in `log_path`."""
    env = cli_env(tmp_path, OUTREACH_UNSUBSCRIBE_IMAP_URL=imap.url(), **settings)
    with log_path.open("w") as log_file:
        return subprocess.Popen(
            [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def test_one_pass_suppresses_exactly_the_valid_request_and_flags_the_others(
    workspace: Workspace,
    imap: ImapTestServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Verify three requests (the recipient's own, one forged with that token for somebody
    else, one without a token): the pass suppresses only the first (unsubscribed, source
    mailto, audited as the recipient), marks it \\Seen, flags the other two and leaves them
    unread; a second pass does nothing new; the next run skips the address as `suppressed`;
    and no log line holds the password or a token."""
    caplog.set_level(logging.INFO)
    outbox = tmp_path / "outbox"
    workflow = seed(workspace, outbox)
    first = send(workspace, workflow)
    assert {d.status for d in first.values()} == {DeliveryStatus.SENT}
    mailto = mailto_of(outbox, "person1@example.com")

    valid = imap.append(request(mailto, sender='"Person One" <PERSON1@EXAMPLE.COM>'))
    forged = imap.append(request(mailto, sender="Person2@Example.com"))
    no_token = imap.append(request(mailto, sender="person3@example.com", subject="unsubscribe"))
    mailbox = parse_imap_url(imap.url())

    report = read_mailbox(workspace, mailbox)

    assert [(h.uid, h.decision.action, h.decision.reason) for h in report.handled] == [
        (valid, Action.SUPPRESS, None),
        (forged, Action.FLAG, FlagReason.TOKEN_MISMATCH),
        (no_token, Action.FLAG, FlagReason.NO_TOKEN),
    ]
    assert report.suppressed == ["PERSON1@EXAMPLE.COM"] and report.flagged == 2
    assert suppressed(workspace) == {"person1@example.com": ("unsubscribed", "mailto")}
    assert imap.flags(valid) == {SEEN}
    assert imap.flags(forged) == {FLAGGED} and imap.flags(no_token) == {FLAGGED}
    added = compliance.audit_entries(workspace, search="suppression.add")
    assert [(a["actor"], a["subject"]) for a in added] == [("recipient", "person1@example.com")]
    assert str(report) == (
        f"{mailbox.display}: 3 new messages, 1 addresses suppressed, 2 flagged for a human"
    )

    again = read_mailbox(workspace, mailbox)
    assert again.handled == []
    assert imap.flags(valid) == {SEEN} and imap.flags(forged) == {FLAGGED}
    assert suppressed(workspace) == {"person1@example.com": ("unsubscribed", "mailto")}
    assert len(compliance.audit_entries(workspace, search="suppression.add")) == 1
    assert imap.uids() == [valid, forged, no_token]  # nothing deleted

    second = send(workspace, workflow)
    assert second["person1@example.com"].status is DeliveryStatus.SKIPPED
    assert (second["person1@example.com"].reason or "").startswith("suppressed: ")
    assert {k for k, d in second.items() if d.status is DeliveryStatus.SENT} == {
        f"person{i}@example.com" for i in (0, 2, 3)
    }

    logged = caplog.text
    assert "event=mailto.flagged" in logged and "reason=token_mismatch" in logged
    key = compliance.unsubscribe_key(workspace)
    assert PASSWORD not in logged and token(key, "person1@example.com") not in logged


def test_request_from_the_message_itself_round_trips_for_every_recipient(
    sqlite_workspace: Workspace, imap: ImapTestServer
) -> None:
    """Verify the writer and the reader agree: each recipient's own mailto, answered from
    their address, suppresses that address and no other (four of four)."""
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(sqlite_workspace))
    people = [f"p{i}+tag@example.org" for i in range(4)]
    for person in people:
        imap.append(request(links(person), sender=person.upper()))
    report = read_mailbox(sqlite_workspace, parse_imap_url(imap.url()))
    assert sorted(s.lower() for s in report.suppressed) == people
    assert set(suppressed(sqlite_workspace)) == set(people)


def test_cli_reads_once_and_prints_what_it_did_without_the_password(
    workspace: Workspace,
    db_url: str,
    imap: ImapTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Verify `read-unsubscribes` prints one line per message and a summary, exits 0; with a
    wrong password it exits 1 naming the masked mailbox and the server's refusal; without the
    setting it exits 2 naming the variable. Neither password appears anywhere."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("OUTREACH_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("OUTREACH_DATABASE_URL", db_url)
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(workspace))
    imap.append(request(links("ann@example.org"), sender="Ann <ann@example.org>"))
    imap.append(request(links("ann@example.org"), sender="eve@example.org"))

    monkeypatch.setenv("OUTREACH_UNSUBSCRIBE_IMAP_URL", imap.url())
    assert cli.main(["read-unsubscribes"]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    display = parse_imap_url(imap.url()).display
    assert out.splitlines() == [
        "message 1: suppressed ann@example.org",
        "message 2: flagged for a human: the token is not the sender's (forged, or sent from "
        "another address) (from eve@example.org)",
        f"{display}: 2 new messages, 1 addresses suppressed, 1 flagged for a human",
    ]
    assert suppressed(workspace) == {"ann@example.org": ("unsubscribed", "mailto")}

    monkeypatch.setenv("OUTREACH_UNSUBSCRIBE_IMAP_URL", imap.url(password=WRONG_PASSWORD))
    assert cli.main(["read-unsubscribes"]) == cli.EXIT_INCOMPLETE
    out_wrong, err_wrong = capsys.readouterr()
    assert f"outreach: unsubscribe mailbox {display}: " in err_wrong
    assert "LOGIN failed" in err_wrong
    assert "check the user and password in OUTREACH_UNSUBSCRIBE_IMAP_URL" in err_wrong

    monkeypatch.delenv("OUTREACH_UNSUBSCRIBE_IMAP_URL")
    assert cli.main(["read-unsubscribes"]) == cli.EXIT_USAGE
    _, err_unset = capsys.readouterr()
    assert "OUTREACH_UNSUBSCRIBE_IMAP_URL is not set" in err_unset

    everything = out + err + out_wrong + err_wrong + err_unset + caplog.text
    for secret in (PASSWORD, WRONG_PASSWORD, PASSWORD.replace("/", "%2F")):
        assert secret not in everything
    assert imap.logins == ["unsub"]  # the wrong password did not get in


def test_daemon_read_logs_a_failure_and_carries_on(
    workspace: Workspace, imap: ImapTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify the daemon's read: nothing configured -> nothing done; a wrong password or a
    server that is gone -> an error line with the mailbox masked, no exception; once the
    server is back the next read suppresses."""
    caplog.set_level(logging.INFO)
    assert read_unsubscribes(workspace) is None  # no OUTREACH_UNSUBSCRIBE_IMAP_URL
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(workspace))
    imap.append(request(links("bob@example.org"), sender="bob@example.org"))
    settings = workspace.settings

    workspace.settings = settings.model_copy(
        update={"unsubscribe_imap_url": SecretStr(imap.url(password=WRONG_PASSWORD))}
    )
    assert read_unsubscribes(workspace) is None
    assert "event=mailbox.failed" in caplog.text and "LOGIN failed" in caplog.text

    gone = ImapTestServer(password=PASSWORD).start()
    closed_url = gone.url()
    gone.stop()
    workspace.settings = settings.model_copy(update={"unsubscribe_imap_url": SecretStr(closed_url)})
    with pytest.raises(MailboxError, match="Connection refused"):
        read_mailbox(workspace, parse_imap_url(closed_url))
    assert read_unsubscribes(workspace) is None
    assert suppressed(workspace) == {}

    workspace.settings = settings.model_copy(update={"unsubscribe_imap_url": SecretStr(imap.url())})
    report = read_unsubscribes(workspace)
    assert report is not None and report.suppressed == ["bob@example.org"]
    assert "event=mailbox.read" in caplog.text and "suppressed=1" in caplog.text
    assert caplog.text.count("event=mailbox.failed") == 2
    for secret in (PASSWORD, WRONG_PASSWORD, PASSWORD.replace("/", "%2F")):
        assert secret not in caplog.text


def test_scheduler_daemon_reads_the_mailbox_repeatedly_and_survives_an_outage(
    tmp_path: Path, imap: ImapTestServer
) -> None:
    """Verify the daemon process with OUTREACH_UNSUBSCRIBE_IMAP_URL: a request is handled
    without anyone asking; with the server gone it logs the failure and keeps running; when
    the server is back (same port) the next request is handled too. Its log never holds the
    password."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        links = MailtoLinks(UNSUB, compliance.unsubscribe_key(ws))
    finally:
        ws.close()
    log_path = tmp_path / "daemon.log"
    daemon = start_daemon(tmp_path, log_path, imap, OUTREACH_UNSUBSCRIBE_IMAP_INTERVAL_S="0.5")
    revived: ImapTestServer | None = None
    try:
        first = imap.append(request(links("ann@example.org"), sender="ann@example.org"))
        wait_for(lambda: imap.flags(first) == {SEEN}, what="the daemon to handle a request")
        port = imap.port
        imap.stop()
        wait_for(
            lambda: "event=mailbox.failed" in log_path.read_text(),
            what="the daemon to log the failed read",
        )
        assert daemon.poll() is None, log_path.read_text()
        revived = ImapTestServer(password=PASSWORD, port=port).start()
        second = revived.append(request(links("bob@example.org"), sender="bob@example.org"))
        wait_for(lambda: revived.flags(second) == {SEEN}, what="the read after the outage")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        if revived is not None:
            revived.stop()
    log = log_path.read_text()
    assert code == 0, log
    assert "event=mailbox.read" in log and "suppressed=1" in log
    assert PASSWORD not in log and PASSWORD.replace("/", "%2F") not in log
    ws = open_workspace(make_settings(tmp_path))
    try:
        assert suppressed(ws) == {
            "ann@example.org": ("unsubscribed", "mailto"),
            "bob@example.org": ("unsubscribed", "mailto"),
        }
    finally:
        ws.close()


def test_a_pass_is_bounded_and_odd_messages_are_flagged_not_read(
    sqlite_workspace: Workspace, imap: ImapTestServer
) -> None:
    """Verify a pass handles at most `limit` messages (the rest next time, said in its
    summary); an oversized message is flagged without being read even with a valid token; and
    a folder that does not exist is an error naming it, with the password masked."""
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(sqlite_workspace))
    people = ["a@example.org", "b@example.org", "c@example.org"]
    uids = [imap.append(request(links(p), sender=p)) for p in people]
    large = request(links("d@example.org"), sender="d@example.org") + b"x" * MAX_MESSAGE_BYTES
    big = imap.append(large)
    mailbox = parse_imap_url(imap.url())

    first = read_mailbox(sqlite_workspace, mailbox, limit=2)
    assert [h.uid for h in first.handled] == uids[:2] and first.left == 2
    assert str(first).endswith(", 2 left for the next pass")
    assert imap.flags(uids[2]) == set() and imap.flags(big) == set()

    second = read_mailbox(sqlite_workspace, mailbox, limit=2)
    assert [(h.uid, h.decision.reason) for h in second.handled] == [
        (uids[2], None),
        (big, FlagReason.TOO_LARGE),
    ]
    assert second.left == 0 and imap.flags(big) == {FLAGGED}
    assert set(suppressed(sqlite_workspace)) == set(people)

    missing = parse_imap_url(imap.url(folder="Nope"))
    with pytest.raises(MailboxError, match="SELECT Nope answered NO") as excinfo:
        read_mailbox(sqlite_workspace, missing)
    assert missing.display in str(excinfo.value) and PASSWORD not in str(excinfo.value)


def test_imaps_verifies_the_servers_certificate(
    sqlite_workspace: Workspace, imap: ImapTestServer, tmp_path: Path
) -> None:
    """Verify imaps:// speaks TLS from the first byte and checks the certificate: with the
    system's trust store the pass is refused before LOGIN, naming the certificate failure, the
    password masked; trusted (its CA given) the request is handled."""
    cert, key = self_signed_loopback_cert(tmp_path)
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(sqlite_workspace))
    imap.append(request(links("ann@example.org"), sender="ann@example.org"))
    with TlsFront(imap.port, cert, key) as front:
        mailbox = parse_imap_url(f"imaps://unsub:{quote(PASSWORD, safe='')}@127.0.0.1:{front.port}")
        assert mailbox.display == f"imaps://unsub:***@127.0.0.1:{front.port}/INBOX"

        with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED") as excinfo:
            read_mailbox(sqlite_workspace, mailbox)
        assert mailbox.display in str(excinfo.value) and PASSWORD not in str(excinfo.value)
        assert imap.logins == []

        trusted = ssl.create_default_context(cafile=str(cert))
        report = read_mailbox(sqlite_workspace, mailbox, ssl_context=trusted)
    assert report.suppressed == ["ann@example.org"] and imap.logins == ["unsub"]


def test_starttls_is_required_when_asked_for(
    sqlite_workspace: Workspace, imap: ImapTestServer
) -> None:
    """Verify imap://…?starttls=1 against a server that does not offer STARTTLS stops before
    LOGIN (no fallback to sending the password in clear), and closes its connection."""
    mailbox = parse_imap_url(imap.url() + "?starttls=1")
    with pytest.raises(MailboxError, match="TLS not supported by server") as excinfo:
        read_mailbox(sqlite_workspace, mailbox)
    assert mailbox.display in str(excinfo.value) and PASSWORD not in str(excinfo.value)
    assert imap.logins == []
    # the error is still held here (its context's traceback reaches the client): the
    # connection must have been closed by the reader, not by the garbage collector
    wait_for(lambda: imap.connected() == 0, what="the refused connection to close")
    assert excinfo.value.__context__ is not None


def run_status(ws: Workspace, run_id: int) -> RunStatus:
    return services.run_summary(ws, run_id).run.status


def test_mailbox_reader_stuck_on_a_silent_server_does_not_hold_up_a_tick(
    workspace: Workspace, imap: ImapTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify the daemon's mailbox reader thread: while its read waits on a server that has not
    even greeted it, a tick in this thread claims and sends a queued run to COMPLETED; stopping
    the reader then leaves the stuck read behind with a warning (mailbox masked); once the
    server answers, that read finishes and suppresses the request, and the thread ends."""
    caplog.set_level(logging.INFO)
    workflow = seed(workspace, tmp_path / "outbox")
    links = MailtoLinks(UNSUB, compliance.unsubscribe_key(workspace))
    uid = imap.append(request(links("bob@example.org"), sender="bob@example.org"))
    workspace.settings = workspace.settings.model_copy(
        update={"unsubscribe_imap_url": SecretStr(imap.url())}
    )
    imap.hold()
    reader = MailboxReader(workspace, interval=0.2)
    reader.start()
    try:
        wait_for(lambda: len(imap.held()) == 1, what="the reader to connect")
        stuck = imap.held()[0]
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")

        tick(workspace, new_worker_id(), StopSignal())

        assert run_status(workspace, run_id) is RunStatus.COMPLETED
        assert imap.held() == [stuck] and reader.reads == 0  # the read is still waiting
        reader.stop(wait_s=0.2)
        assert reader.is_alive() and "event=mailbox.abandoned" in caplog.text
    finally:
        imap.release()
    reader.join(timeout=60)
    assert not reader.is_alive() and reader.reads == 1
    assert imap.flags(uid) == {SEEN}
    assert suppressed(workspace) == {"bob@example.org": ("unsubscribed", "mailto")}
    assert PASSWORD not in caplog.text and PASSWORD.replace("/", "%2F") not in caplog.text


def test_scheduler_daemon_sends_while_its_mailbox_read_is_stuck(
    tmp_path: Path, imap: ImapTestServer
) -> None:
    """Verify the daemon process: with the IMAP server accepting but not answering, a run
    queued after the mailbox read got stuck is sent to COMPLETED while that same read is
    still waiting; once the server answers, the request in the mailbox is handled; SIGTERM
    ends the daemon with 0, and its log never holds the password."""
    ws = open_workspace(make_settings(tmp_path))
    log_path = tmp_path / "daemon.log"
    imap.hold()
    try:
        workflow = seed(ws, tmp_path / "outbox")
        links = MailtoLinks(UNSUB, compliance.unsubscribe_key(ws))
        uid = imap.append(request(links("ann@example.org"), sender="ann@example.org"))
        daemon = start_daemon(tmp_path, log_path, imap, OUTREACH_UNSUBSCRIBE_IMAP_INTERVAL_S="0.5")
        try:
            wait_for(lambda: len(imap.held()) == 1, what="the daemon's read to connect")
            stuck = imap.held()[0]
            run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
            wait_for(
                lambda: run_status(ws, run_id) is RunStatus.COMPLETED,
                what="the daemon to send the run",
            )
            # the read that was stuck before the run was queued is stuck still: the daemon
            # did not wait for it (an IMAP client gives up only after IMAP_TIMEOUT_S)
            assert imap.held() == [stuck], log_path.read_text()
            imap.release()
            wait_for(lambda: imap.flags(uid) == {SEEN}, what="the read once the server answers")
        finally:
            imap.release()
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
        log = log_path.read_text()
        assert code == 0, log
        assert f"event=run.done run={run_id} status=COMPLETED" in log
        assert "event=mailbox.read" in log and "event=daemon.stopped" in log
        assert PASSWORD not in log and PASSWORD.replace("/", "%2F") not in log
        assert suppressed(ws) == {"ann@example.org": ("unsubscribed", "mailto")}
    finally:
        ws.close()


def test_sigterm_while_the_mailbox_read_is_stuck_stops_the_daemon_cleanly(
    tmp_path: Path, imap: ImapTestServer
) -> None:
    """Verify SIGTERM during a mailbox read the server never answers: the daemon says it left
    the read behind (mailbox masked), unregisters and exits 0; its connection is closed."""
    log_path = tmp_path / "daemon.log"
    imap.hold()
    daemon = start_daemon(tmp_path, log_path, imap)
    try:
        wait_for(lambda: len(imap.held()) == 1, what="the daemon's read to connect")
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    log = log_path.read_text()
    assert code == 0, log
    assert "event=mailbox.abandoned mailbox=imap://unsub:***@127.0.0.1" in log
    assert "event=daemon.stopped" in log
    assert PASSWORD not in log and PASSWORD.replace("/", "%2F") not in log
    wait_for(lambda: imap.held() == [], what="the stuck connection to close")
