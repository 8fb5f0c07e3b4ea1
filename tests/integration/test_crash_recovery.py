"""SIGKILL at about 40 % of a 3,000-recipient run; `resume` finishes it; `retry
--include-unknown` resends what may have gone out, with the same Message-ID.

The sending process is a real `python -m outreach_core send` (concurrency 8, batches of 50)
against an aiosmtpd sink on loopback, on SQLite and on PostgreSQL. The sink takes a moment over
every message, so sends are in flight when the process dies, and it holds the reply to one
recipient's message (stored: it arrived) until the kill, so one of them surely is. Only the
deliveries handed to the engine may become `unknown`, at most the concurrency; the rest of the
killed batch goes back to pending and is sent by the resume, each exactly once.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.adapters.store import deliveries, runs
from outreach_core.adapters.workspace import open_workspace
from outreach_core.domain.models import Delivery, RunCounts
from outreach_core.domain.states import DeliveryStatus, RunStatus

from conftest import REPO, cli_env, make_settings, run_cli
from smtp_server import Received, SmtpTestServer

pytestmark = pytest.mark.races

ROWS = 3000
CONCURRENCY = 8  # the most sends in flight at the kill; a batch (50) is claimed at once
#: its message is stored but the reply held, so it is in flight when the process is killed; the
#: first of its batch (p1250-p1299), so most of the batch is still unsent then
HELD = "p1250@example.com"


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def env_for(tmp_path: Path, db_url: str) -> dict[str, str]:
    if db_url.startswith("sqlite"):
        return cli_env(tmp_path)
    return cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"p{n}@example.com", f"P{n}"] for n in range(ROWS))
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    return contacts, template


def send_and_kill(sink: SmtpTestServer, env: dict[str, str], tmp_path: Path) -> int:
    """Start the send, SIGKILL it once the held recipient's message has arrived; the run id."""
    contacts, template = write_inputs(tmp_path)
    sink.handler.data_delay = 0.005  # every message takes a moment: several in flight at once
    sink.handler.hold_reply[HELD] = 60.0
    sender = subprocess.Popen(
        [sys.executable, "-m", "outreach_core", "send", str(contacts), "--template",
         str(template), "--engine", sink.url, "--skip-mx", "--concurrency", str(CONCURRENCY),
         "--rate", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert sender.stdout is not None
        run_id = int(sender.stdout.readline().removeprefix("run: "))
        deadline, seen = time.monotonic() + 180, 0
        while time.monotonic() < deadline:  # kill at once: most of HELD's batch is unsent then
            arrived = sink.handler.received[seen:]
            seen += len(arrived)
            if any(HELD in item.rcpt_tos for item in arrived):
                break
            time.sleep(0.001)
        sender.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        sender.wait(timeout=10)
    finally:
        if sender.poll() is None:
            sender.kill()
    sink.handler.hold_reply.clear()
    return run_id


def message_ids(items: list[Received]) -> list[str]:
    return [str(item.message["Message-ID"]).strip() for item in items]


def read_ledger(ws_url: str | None, tmp_path: Path, run_id: int) -> tuple[Delivery, ...]:
    ws = open_workspace(make_settings(tmp_path, ws_url))
    try:
        with ws.db.connect() as conn:
            return tuple(deliveries.list_deliveries(conn, run_id))
    finally:
        ws.close()


def run_state(ws_url: str | None, tmp_path: Path, run_id: int) -> tuple[RunStatus, RunCounts]:
    ws = open_workspace(make_settings(tmp_path, ws_url))
    try:
        with ws.db.connect() as conn:
            return runs.get_run(conn, run_id).status, deliveries.counts(conn, run_id)
    finally:
        ws.close()


def test_sigkill_at_40_percent_unknown_only_for_handed_sends_the_rest_sent_once(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify a SIGKILLed 3,000-recipient run (concurrency 8) resumes to COMPLETED with at most
    8 `unknown` (the held one among them), every other address sent and received exactly once,
    and that `retry --include-unknown` resends the unknown ones with the Message-ID they had."""
    env = env_for(tmp_path, db_url)
    ws_url = None if db_url.startswith("sqlite") else db_url
    run_id = send_and_kill(sink, env, tmp_path)
    at_kill = len(sink.handler.received)
    assert ROWS * 0.3 <= at_kill <= ROWS * 0.7, at_kill
    status, _ = run_state(ws_url, tmp_path, run_id)
    assert status is RunStatus.SENDING  # left mid-flight
    left = [d for d in read_ledger(ws_url, tmp_path, run_id) if d.status is DeliveryStatus.SENDING]
    handed = {d.email for d in left if d.handed_at is not None}
    assert HELD in handed and len(handed) <= CONCURRENCY
    assert len(left) > len(handed)  # the rest of the claimed batch never went to the engine

    resumed = run_cli(tmp_path, "resume", str(run_id), env=env, timeout=300)
    status, counts = run_state(ws_url, tmp_path, run_id)
    ledger = {d.email: d for d in read_ledger(ws_url, tmp_path, run_id)}
    arrived = sink.handler.by_recipient()

    assert status is RunStatus.COMPLETED, resumed.stderr
    assert len(ledger) == ROWS
    assert counts.sent + counts.unknown == ROWS, counts
    unknown = {a for a, d in ledger.items() if d.status is DeliveryStatus.UNKNOWN}
    assert HELD in unknown  # its message went out and its executor never heard back
    assert len(unknown) <= CONCURRENCY, len(unknown)
    assert resumed.returncode == 1  # unknown deliveries are left for a person to decide
    for address, delivery in ledger.items():
        if address in unknown:
            assert len(arrived.get(address, [])) <= 1, address
            assert delivery.message_id, address  # the Message-ID its message carried
        else:  # sent, exactly once, and the ledger names the message that arrived
            assert message_ids(arrived.get(address, [])) == [delivery.message_id], address
    assert message_ids(arrived[HELD]) == [ledger[HELD].message_id]

    retried = run_cli(tmp_path, "retry", str(run_id), "--include-unknown", env=env, timeout=300)
    assert retried.returncode == 0, retried.stderr
    status, counts = run_state(ws_url, tmp_path, run_id)
    after = {d.email: d for d in read_ledger(ws_url, tmp_path, run_id)}
    now_arrived = sink.handler.by_recipient()

    assert status is RunStatus.COMPLETED
    assert counts.sent == ROWS, counts
    for address in unknown:
        # one more copy, every copy with the Message-ID stored before the retry: the mailbox
        # can tell the resend is the same message
        copies = message_ids(now_arrived[address])
        assert len(copies) == len(arrived.get(address, [])) + 1, address
        assert set(copies) == {ledger[address].message_id} == {after[address].message_id}
    assert len(now_arrived[HELD]) == 2
    untouched = set(ledger) - unknown
    assert all(len(now_arrived[a]) == 1 for a in untouched)
