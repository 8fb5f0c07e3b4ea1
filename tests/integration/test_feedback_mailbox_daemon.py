"""The engine mailboxes from the daemon's reader thread and the command line: a mailbox that
never answers does not slow a send down, and the CLI names, checks and reads a mailbox with the
URL kept off its command line and out of its output."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.states import DeliveryStatus
from outreach_core.entrypoints.feedback_reader import FeedbackReader
from outreach_core.services import compliance, feedback_mailboxes
from tests.feedback_fixtures import AIMS, ENGINE, aimed, sample, send_to_sample_recipients
from tests.imap_server import ImapTestServer
from tests.smtp_server import SmtpTestServer

from conftest import REPO, cli_env, make_settings, run_cli, wait_for

PASSWORD = "daemon-pw-R4t-never-printed"


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    with ImapTestServer(user="sales", password=PASSWORD) as server:
        yield server


def test_a_send_goes_at_full_speed_while_the_mailbox_server_never_answers(
    workspace: Workspace, imap: ImapTestServer
) -> None:
    """Verify, with the reader thread stuck on an IMAP server that accepted the connection but
    never greets, that a whole run is sent in a few seconds (the IMAP timeout is 30 s), the
    reader still waiting when it ends; released, the reader finishes its pass."""
    with SmtpTestServer() as smtp:
        engine = services.save_engine(
            workspace, name=ENGINE, url=smtp.url, from_email="sales@northwind.example",
            from_name="Sales", actor="test",
        )  # fmt: skip
        feedback_mailboxes.set_engine_mailbox(workspace, engine.id, imap.url(), actor="test")
        imap.hold()
        reader = FeedbackReader(workspace, "daemon-a", interval=60)
        reader.start()
        try:
            wait_for(lambda: bool(imap.held()), what="the reader connecting", timeout=10)
            started = time.monotonic()
            sent = send_to_sample_recipients(workspace, smtp.url)
            elapsed = time.monotonic() - started
            assert imap.held(), "the reader should still be waiting for the greeting"
        finally:
            imap.release()
            wait_for(lambda: reader.passes >= 1, what="the reader's pass", timeout=30)
            reader.stop()
    assert sent.engine_id == engine.id
    assert {d.status for d in sent.by_email.values()} == {DeliveryStatus.SENT}
    assert elapsed < 10, f"the send took {elapsed:.1f} s"
    (status,) = feedback_mailboxes.mailbox_statuses(workspace)
    assert status.state is not None and status.state.error is None


def test_cli_names_checks_and_reads_a_mailbox_without_showing_the_password(
    tmp_path: Path, imap: ImapTestServer
) -> None:
    """Verify `engine-mailbox --url-stdin`, `check-mailbox` and `read-feedback` (counts per
    kind), `--clear`, and that no output holds the password."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        with SmtpTestServer() as smtp:
            sent = send_to_sample_recipients(ws, smtp.url)
        for name in ("postfix_hard.eml", "reply_threaded.eml"):
            imap.append(aimed(name, sent.by_email[AIMS[name][0]]))
        imap.append(sample("newsletter.eml"))
    finally:
        ws.close()

    from_env = run_cli(
        tmp_path, "engine-mailbox", ENGINE, "--url-env", "BOX_URL",
        env=cli_env(tmp_path, BOX_URL=imap.url(password="not-it")),
    )  # fmt: skip
    named = run_cli(tmp_path, "engine-mailbox", ENGINE, "--url-stdin", stdin=imap.url() + "\n")
    checked = run_cli(tmp_path, "check-mailbox", ENGINE)
    read = run_cli(tmp_path, "read-feedback")
    cleared = run_cli(tmp_path, "engine-mailbox", ENGINE, "--clear")
    again = run_cli(tmp_path, "read-feedback")

    assert from_env.returncode == 0 and "***" in from_env.stdout
    assert "not-it" not in from_env.stdout + from_env.stderr
    assert named.returncode == 0, named.stderr
    assert "***" in named.stdout
    assert checked.returncode == 0 and "3 messages in INBOX" in checked.stdout
    assert read.returncode == 0, read.stderr
    assert "hard_bounce 1" in read.stdout and "reply 1" in read.stdout
    assert "other 1" in read.stdout and "1 suppressed" in read.stdout
    assert cleared.returncode == 0 and "no engine names a mailbox" in again.stdout
    for result in (named, checked, read, cleared, again):
        assert PASSWORD not in result.stdout + result.stderr


def test_daemon_once_reads_the_engine_mailboxes_after_its_pass(
    tmp_path: Path, imap: ImapTestServer
) -> None:
    """Verify `scheduler_daemon.py --once` reads every engine mailbox after its sending pass:
    a hard bounce in it suppresses the address; the log holds no password."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        with SmtpTestServer() as smtp:
            sent = send_to_sample_recipients(ws, smtp.url)
        feedback_mailboxes.set_engine_mailbox(ws, sent.engine_id, imap.url(), actor="test")
        imap.append(aimed("exim_hard.eml", sent.by_email["m.okafor@adatum.example"]))
        daemon = subprocess.run(
            [sys.executable, "scheduler_daemon.py", "--once"],
            cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert daemon.returncode == 0, daemon.stderr
        assert PASSWORD not in daemon.stdout + daemon.stderr
        reasons = {s.email_normalized: str(s.reason) for s in compliance.list_suppressions(ws)}
        assert reasons == {"m.okafor@adatum.example": "bounced"}
    finally:
        ws.close()
