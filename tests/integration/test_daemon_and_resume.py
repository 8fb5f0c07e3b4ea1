"""The daemon and `resume`: queued runs get sent, stops and crashes lose nothing, resend nothing."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.adapters.senders.outbox import message_files

from conftest import REPO, cli_env, run_cli, wait_for
from smtp_server import SmtpTestServer

ROWS = 200


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for n in range(1, ROWS + 1):
            writer.writerow([f"r{n}@example.com", f"R{n}"])
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    return contacts, template


def start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_state(tmp_path: Path, run_id: int) -> dict:
    listed = json.loads(run_cli(tmp_path, "runs", "--json").stdout)
    return next(item for item in listed if item["run"]["id"] == run_id)


def queue(tmp_path: Path, inputs: tuple[Path, Path], engine: str, *extra: str) -> int:
    contacts, template = inputs
    result = run_cli(
        tmp_path, "send", str(contacts), "--template", str(template), "--engine", engine,
        "--skip-mx", "--queue", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.splitlines()[0].removeprefix("run: "))


def test_daemon_once_sends_a_queued_run(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    """Verify `scheduler_daemon.py --once` sends what is queued, then exits 0."""
    outbox = tmp_path / "outbox"
    run_id = queue(tmp_path, inputs, f"outbox://{outbox}", "--rate", "0")
    assert run_state(tmp_path, run_id)["run"]["status"] == "QUEUED"
    daemon = start(tmp_path, "scheduler_daemon.py", "--once")
    assert daemon.wait(timeout=120) == 0, daemon.stderr.read()
    state = run_state(tmp_path, run_id)
    assert state["run"]["status"] == "COMPLETED"
    assert state["counts"]["sent"] == ROWS
    assert len(list(message_files(outbox))) == ROWS


def test_sigterm_finishes_the_batch_and_leaves_the_run_resumable(
    tmp_path: Path, inputs: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify SIGTERM stops the daemon after its batch; `resume` then sends the rest once."""
    run_id = queue(tmp_path, inputs, smtp_server.url, "--rate", "40", "--burst", "1")
    daemon = start(tmp_path, "scheduler_daemon.py", "--interval", "0.5")
    wait_for(lambda: len(smtp_server.handler.received) >= 5, what="the first messages")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0, daemon.stderr.read()

    state = run_state(tmp_path, run_id)
    assert state["run"]["status"] == "SENDING"
    assert state["run"]["worker_id"] is None
    counts = state["counts"]
    assert counts["sending"] == 0 and counts["unknown"] == 0
    assert 0 < counts["sent"] < ROWS
    assert counts["sent"] == len(smtp_server.handler.received)

    resumed = run_cli(tmp_path, "resume", str(run_id))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == f"run: {run_id}"
    arrived = smtp_server.handler.by_recipient()
    assert len(arrived) == ROWS
    assert all(len(items) == 1 for items in arrived.values())


def test_resume_after_a_crash_does_not_resend_in_flight_deliveries(
    tmp_path: Path, inputs: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify a SIGKILLed send is resumable at once; in-flight rows become unknown, not resent."""
    contacts, template = inputs
    sender = start(
        tmp_path, "-m", "outreach_core", "send", str(contacts), "--template", str(template),
        "--engine", smtp_server.url, "--skip-mx", "--rate", "40", "--burst", "1",
    )  # fmt: skip
    run_id = int(sender.stdout.readline().removeprefix("run: "))
    wait_for(lambda: len(smtp_server.handler.received) >= 10, what="the first messages")
    sender.kill()
    sender.wait(timeout=10)
    before = len(smtp_server.handler.received)

    resumed = run_cli(tmp_path, "resume", str(run_id))
    assert resumed.returncode in (0, 1), resumed.stderr
    state = run_state(tmp_path, run_id)
    counts = state["counts"]
    assert state["run"]["status"] == "COMPLETED"
    assert counts["sent"] + counts["unknown"] == ROWS
    assert counts["unknown"] <= 50  # bounded by the batch size
    assert resumed.returncode == (1 if counts["unknown"] else 0)
    arrived = smtp_server.handler.by_recipient()
    assert all(len(items) == 1 for items in arrived.values())
    assert len(smtp_server.handler.received) >= before
    assert counts["sent"] + counts["unknown"] >= len(arrived)


def test_resume_refuses_while_a_live_executor_holds_the_run(
    tmp_path: Path, inputs: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify `resume` exits 2 with a clear message while the sending process is alive."""
    contacts, template = inputs
    sender = start(
        tmp_path, "-m", "outreach_core", "send", str(contacts), "--template", str(template),
        "--engine", smtp_server.url, "--skip-mx", "--rate", "20", "--burst", "1",
    )  # fmt: skip
    try:
        run_id = int(sender.stdout.readline().removeprefix("run: "))
        wait_for(lambda: len(smtp_server.handler.received) >= 2, what="sending to start")
        refused = run_cli(tmp_path, "resume", str(run_id))
        assert refused.returncode == 2
        assert "is being sent by" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        sender.send_signal(signal.SIGTERM)
        sender.wait(timeout=60)
    arrived = smtp_server.handler.by_recipient()
    assert all(len(items) == 1 for items in arrived.values())
