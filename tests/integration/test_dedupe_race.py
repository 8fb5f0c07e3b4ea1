"""Never twice across processes: one workflow's runs racing each other (SQLite and PostgreSQL).

The situation a user makes with a double click on send-now, an API trigger while the
scheduled run sends, and the dashboard's Send button: one workflow of 3,000 recipients queued
twice and taken by two `scheduler_daemon.py` processes (one owns a run, the other helps once
its own run is done), and a third run started by the dashboard's background thread in this
process, all sending at once to a loopback SMTP sink through small batches with no rate
limit, so their claims interleave. Nobody may receive two messages: each address is sent by
one run and skipped by the others with a reason naming the run that sent it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, runs
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource

from conftest import REPO, cli_env, make_settings, wait_for
from smtp_server import SmtpTestServer

pytestmark = pytest.mark.races

RECIPIENTS = 3000
ROUNDS = 5
#: small batches: the three runs take turns at the lock many times per round
BATCH = 20
SKIP_REASON = re.compile(
    r"sent_recently: run (\d+) of this workflow (sent to it within 24 h|is sending it now)"
)


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def workflow_of(ws: Workspace, name: str, engine_url: str) -> Workflow:
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            source=f"{name}.csv",
            columns=["email", "name"],
            email_column="email",
            rows=[{"email": f"{name}-{n}@example.com", "name": f"P{n}"} for n in range(RECIPIENTS)],
        ),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(
            rate=0, batch_size=BATCH, concurrency=4, skip_mx=True, dedupe_window_hours=24
        ),
        actor="test",
    )


def start_daemons(count: int, tmp_path: Path, db_url: str, logs: list[IO[str]]) -> list:
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    daemons = []
    for n in range(count):
        # a file, not a pipe: five rounds of log lines must never block a daemon on a full pipe
        log = (tmp_path / f"daemon{n}.log").open("w+")
        logs.append(log)
        daemons.append(
            subprocess.Popen(
                [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        )
    return daemons


def stop_all(daemons: list[subprocess.Popen]) -> None:
    for daemon in daemons:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
    for daemon in daemons:
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def statuses(ws: Workspace, run_ids: list[int]) -> list[RunStatus]:
    with ws.db.connect() as conn:
        return [runs.get_run(conn, run_id).status for run_id in run_ids]


def one_round(ws: Workspace, sink: SmtpTestServer, name: str) -> Counter[str]:
    """Queue the workflow twice for the daemons, start it from the dashboard's thread once the
    daemons hold both runs, check nobody got two messages; how the skips read."""
    wf = workflow_of(ws, name, sink.url)
    send_now = services.queue_run(ws, wf.id, trigger="send-now", actor="ann")
    api = services.queue_run(ws, wf.id, trigger="api", actor="api")
    wait_for(
        lambda: RunStatus.QUEUED not in statuses(ws, [send_now, api]),
        timeout=60,
        what="the daemons to take both runs",
    )
    dashboard = services.queue_run(ws, wf.id, trigger="dashboard", actor="bob")
    thread = services.execute_in_background(ws, dashboard)  # what the Send page does
    wait_for(lambda: statuses(ws, [dashboard]) != [RunStatus.QUEUED], timeout=30, what="the thread")
    with ws.db.connect() as conn:
        holder = runs.get_run(conn, dashboard).worker_id or ""
    assert holder.split(":")[1] == str(os.getpid()), holder  # the dashboard's thread sends it
    thread.join(timeout=600)
    assert not thread.is_alive()
    every = [send_now, api, dashboard]
    wait_for(
        lambda: set(statuses(ws, every)) == {RunStatus.COMPLETED},
        timeout=300,
        what="the three runs",
    )

    addresses = {f"{name}-{n}@example.com" for n in range(RECIPIENTS)}
    arrived = {a: m for a, m in sink.handler.by_recipient().items() if a in addresses}
    doubled = sorted(a for a, messages in arrived.items() if len(messages) > 1)
    assert not doubled, f"{len(doubled)} recipients got two messages or more, e.g. {doubled[:3]}"
    assert set(arrived) == addresses  # and everybody got their one

    with ws.db.connect() as conn:
        ledger = {
            run_id: {
                d.email: (d.status, d.reason) for d in deliveries.list_deliveries(conn, run_id)
            }
            for run_id in every
        }
    how: Counter[str] = Counter()
    for address in addresses:
        sent_by = [r for r in every if ledger[r][address][0] is DeliveryStatus.SENT]
        assert len(sent_by) == 1, (address, {r: ledger[r][address] for r in every})
        for run_id in every:
            status, reason = ledger[run_id][address]
            if run_id == sent_by[0]:
                continue
            assert status is DeliveryStatus.SKIPPED, (address, run_id, status, reason)
            named = SKIP_REASON.fullmatch(reason or "")
            assert named, (address, run_id, reason)
            assert int(named[1]) == sent_by[0], (address, run_id, reason)  # the run that sent it
            how[named[2]] += 1
    for run_id, trigger in zip(every, ("send-now", "api", "dashboard"), strict=True):
        how[f"sent by the {trigger} run"] += sum(
            s is DeliveryStatus.SENT for s, _ in ledger[run_id].values()
        )
    return how


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_one_workflow_raced_by_two_daemons_and_the_dashboard_sends_each_recipient_once(
    db_url: str, tmp_path: Path, sink: SmtpTestServer, round_no: int
) -> None:
    """Verify one workflow of 3,000 recipients queued twice for two daemon processes and
    started once from the dashboard's background thread (five rounds, each with fresh
    daemons): no recipient gets two messages, every one gets one, and each address is sent by
    one run and skipped by the two others with a reason naming that run. The runs did meet:
    some addresses were skipped because another run was sending them at that moment."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    logs: list[IO[str]] = []
    daemons: list[subprocess.Popen] = []
    try:
        daemons = start_daemons(2, tmp_path, db_url, logs)
        how = one_round(ws, sink, f"race{round_no}")
        assert all(d.poll() is None for d in daemons)  # no daemon died on the way
    finally:
        stop_all(daemons)
        ws.close()
        errors = []
        for log in logs:
            log.seek(0)
            errors.append(log.read())
            log.close()
    assert [d.returncode for d in daemons] == [0, 0], errors
    assert not any("Traceback" in e for e in errors), errors
    assert how["is sending it now"] > 0, how  # the race the lock decides did happen
    assert len(sink.handler.received) == RECIPIENTS
