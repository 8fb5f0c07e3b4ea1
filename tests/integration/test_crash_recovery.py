"""SIGKILL at about 40 % of a 3,000-recipient run; `resume` finishes it; nothing arrives twice.

The sending process is a real `python -m outreach_core send` against an aiosmtpd sink on
loopback, on SQLite and on PostgreSQL.
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
from outreach_core.domain.states import DeliveryStatus, RunStatus

from conftest import REPO, cli_env, make_settings, run_cli
from smtp_server import SmtpTestServer

ROWS = 3000
BATCH = 50  # SendOptions' default batch size: the most that can be in flight at the kill


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def env_for(tmp_path: Path, db_url: str) -> dict[str, str]:
    if db_url.startswith("sqlite"):
        return cli_env(tmp_path)
    return cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)


def test_sigkill_at_40_percent_then_resume_completes_with_nobody_mailed_twice(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify a SIGKILLed 3,000-recipient run resumes to COMPLETED: every address sent or
    unknown, unknown at most one batch, and no address received two messages."""
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"p{n}@example.com", f"P{n}"] for n in range(ROWS))
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    env = env_for(tmp_path, db_url)

    sender = subprocess.Popen(
        [sys.executable, "-m", "outreach_core", "send", str(contacts), "--template",
         str(template), "--engine", sink.url, "--skip-mx", "--rate", "800", "--burst", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        run_id = int(sender.stdout.readline().removeprefix("run: "))
        deadline = time.monotonic() + 120
        while len(sink.handler.received) < ROWS * 0.4 and time.monotonic() < deadline:
            time.sleep(0.01)
        sender.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        sender.wait(timeout=10)
    finally:
        if sender.poll() is None:
            sender.kill()
    at_kill = len(sink.handler.received)
    assert ROWS * 0.3 <= at_kill <= ROWS * 0.7, at_kill

    ws = open_workspace(make_settings(tmp_path, None if db_url.startswith("sqlite") else db_url))
    try:
        with ws.db.connect() as conn:
            assert runs.get_run(conn, run_id).status is RunStatus.SENDING  # left mid-flight

        resumed = run_cli(tmp_path, "resume", str(run_id), env=env, timeout=300)
        assert resumed.returncode in (0, 1), resumed.stderr

        with ws.db.connect() as conn:
            run = runs.get_run(conn, run_id)
            ledger = {d.email: d for d in deliveries.list_deliveries(conn, run_id)}
            counts = deliveries.counts(conn, run_id)
    finally:
        ws.close()

    assert run.status is RunStatus.COMPLETED
    arrived = sink.handler.by_recipient()
    assert max(len(items) for items in arrived.values()) == 1  # nobody got two messages
    assert len(ledger) == ROWS
    assert {d.status for d in ledger.values()} <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    assert counts.sent + counts.unknown == ROWS
    assert counts.unknown <= BATCH
    sent = {a for a, d in ledger.items() if d.status is DeliveryStatus.SENT}
    assert sent <= set(arrived)  # every `sent` really arrived
    unknown = {a for a, d in ledger.items() if d.status is DeliveryStatus.UNKNOWN}
    assert set(arrived) - sent <= unknown  # anything else that arrived is marked unknown
    assert resumed.returncode == (1 if counts.unknown else 0)
