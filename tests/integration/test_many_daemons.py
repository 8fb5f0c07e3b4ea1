"""Several `scheduler_daemon.py` processes on one database.

PostgreSQL: three daemons, ten schedules due at once and one run of 5,000 recipients to a
loopback SMTP sink; each schedule runs once, every recipient gets one message, each daemon
sends part of the run. Then the run's owner is SIGKILLed mid-run and the others finish it with
nobody mailed twice. SQLite: two daemons on one file never double-run and never crash on a
locked database. And `--once` on the demo workspace sends a due schedule exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries, runs, schedules
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.cadence import Cadence, CadenceKind
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import schedules as scheduler
from outreach_core.services.demo import DEMO_WORKFLOW, load_demo

from conftest import REPO, cli_env, make_settings, wait_for
from smtp_server import SmtpTestServer

pytestmark = pytest.mark.races

BIG = 5000
BATCH = 50
SCHEDULES = 10


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def workflow_of(
    ws: Workspace, name: str, engine_url: str, rows: int, options: SendOptions
) -> Workflow:
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            source=f"{name}.csv",
            columns=["email", "name"],
            email_column="email",
            rows=[{"email": f"{name}-{n}@example.com", "name": f"P{n}"} for n in range(rows)],
        ),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=options,
        actor="test",
    )


def seed(ws: Workspace, tmp_path: Path, sink_url: str, *, big: int, rate: float) -> int:
    """Ten due schedules (three outbox recipients each) and a queued run of `big` recipients."""
    large = workflow_of(
        ws,
        "large",
        sink_url,
        big,
        SendOptions(rate=rate, burst=5, batch_size=BATCH, skip_mx=True, concurrency=4),
    )
    run_id = services.queue_run(ws, large.id, trigger="test", actor="test")
    daily = Cadence(kind=CadenceKind.DAILY, at="09:00")
    for n in range(SCHEDULES):
        small = workflow_of(
            ws, f"small{n}", f"outbox://{tmp_path}/outbox", 3, SendOptions(rate=0, skip_mx=True)
        )
        saved = scheduler.save_schedule(
            ws, scheduler.ScheduleInput(workflow_id=small.id, cadence=daily), actor="test"
        )
        with ws.db.begin() as conn:
            schedules.update_schedule(conn, saved.id, next_run_at=utcnow() - timedelta(seconds=1))
    return run_id


def start_daemons(count: int, tmp_path: Path, db_url: str | None) -> list[subprocess.Popen]:
    extra = {"OUTREACH_DATABASE_URL": db_url} if db_url else {}
    env = cli_env(tmp_path, **extra)
    return [
        subprocess.Popen(
            [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def stop_all(daemons: list[subprocess.Popen]) -> list[str]:
    """SIGTERM every daemon still running; their stderr."""
    for daemon in daemons:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
    errors = []
    for daemon in daemons:
        try:
            _, err = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
        errors.append(err or "")
    return errors


def run_status(ws: Workspace, run_id: int) -> RunStatus:
    with ws.db.connect() as conn:
        return runs.get_run(conn, run_id).status


def check_schedules_ran_once(ws: Workspace) -> None:
    with ws.db.connect() as conn:
        every = schedules.list_schedules(conn)
        scheduled = [r for r in runs.list_runs(conn, limit=1000) if r.trigger == "schedule"]
        sent = {r.id: deliveries.counts(conn, r.id).sent for r in scheduled}
    assert len(every) == SCHEDULES
    assert Counter(r.workflow_id for r in scheduled) == Counter(s.workflow_id for s in every)
    assert len(scheduled) == SCHEDULES  # one run per schedule, none doubled
    assert {s.last_run_id for s in every} == {r.id for r in scheduled}
    assert all(s.next_run_at > utcnow() for s in every)
    assert {r.status for r in scheduled} == {RunStatus.COMPLETED}
    assert set(sent.values()) == {3}


def senders_of(ws: Workspace, run_id: int) -> dict[str | None, int]:
    """Sent deliveries of the run by the daemon (worker id) that claimed them."""
    with ws.db.connect() as conn:
        return deliveries.sent_by_worker(conn, run_id)


def test_three_daemons_on_postgresql_split_a_run_and_run_each_schedule_once(
    tmp_path: Path, postgres_url: str, sink: SmtpTestServer
) -> None:
    """Verify three daemons: ten due schedules run once each, 5,000 recipients get one
    message each, and every daemon sent part of the large run."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    daemons: list[subprocess.Popen] = []
    try:
        run_id = seed(ws, tmp_path, sink.url, big=BIG, rate=120)
        daemons = start_daemons(3, tmp_path, postgres_url)
        wait_for(lambda: run_status(ws, run_id) is RunStatus.COMPLETED, timeout=240, what="the run")
        wait_for(
            lambda: len(list(message_files(tmp_path / "outbox"))) == SCHEDULES * 3,
            timeout=60,
            what="the scheduled runs",
        )
        errors = stop_all(daemons)
        check_schedules_ran_once(ws)
        with ws.db.connect() as conn:
            counts = deliveries.counts(conn, run_id)
        by_daemon = senders_of(ws, run_id)
    finally:
        stop_all(daemons)
        ws.close()
    assert counts.sent == BIG, counts
    arrived = sink.handler.by_recipient()
    assert len(arrived) == BIG
    assert all(len(items) == 1 for items in arrived.values())
    assert len(by_daemon) == 3, by_daemon  # each daemon sent part of the run
    assert all(n > 0 for n in by_daemon.values())
    assert not any("Traceback" in e for e in errors), errors


def test_sigkill_of_the_owner_mid_run_the_others_finish_without_duplicates(
    tmp_path: Path, postgres_url: str, sink: SmtpTestServer
) -> None:
    """Verify SIGKILL of the daemon owning a 5,000-recipient run at about 30 %: the other two
    finish it; every address is sent or unknown, and nobody received two messages."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    daemons: list[subprocess.Popen] = []
    try:
        run_id = seed(ws, tmp_path, sink.url, big=BIG, rate=120)
        daemons = start_daemons(3, tmp_path, postgres_url)
        wait_for(lambda: len(sink.handler.received) >= BIG * 0.3, timeout=180, what="30 %")
        with ws.db.connect() as conn:
            owner = runs.get_run(conn, run_id).worker_id or ""
        pid = int(owner.split(":")[1])
        [victim] = [d for d in daemons if d.pid == pid]
        victim.kill()  # SIGKILL: no handler runs, nothing is released
        victim.wait(timeout=10)
        at_kill = len(sink.handler.received)
        assert at_kill < BIG  # killed mid-run
        wait_for(lambda: run_status(ws, run_id) is RunStatus.COMPLETED, timeout=240, what="the run")
        survivors = [d for d in daemons if d is not victim]
        errors = stop_all(survivors)
        with ws.db.connect() as conn:
            counts = deliveries.counts(conn, run_id)
            ledger = {d.email: d.status for d in deliveries.list_deliveries(conn, run_id)}
        check_schedules_ran_once(ws)
    finally:
        stop_all(daemons)
        ws.close()
    arrived = sink.handler.by_recipient()
    assert max(len(items) for items in arrived.values()) == 1  # nobody got two messages
    assert counts.sent + counts.unknown == BIG, counts
    assert counts.unknown <= 3 * BATCH  # at most one batch in flight per daemon
    sent = {a for a, s in ledger.items() if s is DeliveryStatus.SENT}
    assert sent <= set(arrived)
    assert set(arrived) - sent <= {a for a, s in ledger.items() if s is DeliveryStatus.UNKNOWN}
    assert not any("Traceback" in e for e in errors), errors


def test_two_daemons_on_one_sqlite_file_never_double_run_nor_crash(
    tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify two daemons on one SQLite file: each schedule once, each recipient once, no
    'database is locked' crash, both stop cleanly."""
    ws = open_workspace(make_settings(tmp_path))
    daemons: list[subprocess.Popen] = []
    try:
        run_id = seed(ws, tmp_path, sink.url, big=600, rate=100)
        daemons = start_daemons(2, tmp_path, None)
        wait_for(lambda: run_status(ws, run_id) is RunStatus.COMPLETED, timeout=180, what="the run")
        wait_for(
            lambda: len(list(message_files(tmp_path / "outbox"))) == SCHEDULES * 3,
            timeout=60,
            what="the scheduled runs",
        )
        time.sleep(2)  # a few more ticks of both daemons over the same due-nothing state
        assert all(d.poll() is None for d in daemons)  # neither crashed
        errors = stop_all(daemons)
        check_schedules_ran_once(ws)
    finally:
        stop_all(daemons)
        ws.close()
    assert [d.returncode for d in daemons] == [0, 0], errors
    assert not any("Traceback" in e or "OperationalError" in e for e in errors), errors
    for line in "\n".join(errors).splitlines():  # a locked database only ever defers a tick
        assert "database is locked" not in line or "event=tick.deferred" in line, line
    arrived = sink.handler.by_recipient()
    assert len(arrived) == 600
    assert all(len(items) == 1 for items in arrived.values())


def test_once_on_the_demo_workspace_sends_a_due_schedule_once(tmp_path: Path) -> None:
    """Verify `--once` sends the demo workflow's due schedule and advances next_run_at; a
    second `--once` sends nothing."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        load_demo(ws)
        demo = next(w for w in services.list_workflows(ws) if w.name == DEMO_WORKFLOW)
        saved = scheduler.save_schedule(
            ws,
            scheduler.ScheduleInput(
                workflow_id=demo.id,
                cadence=Cadence(kind=CadenceKind.WEEKDAYS, at="09:00"),
                timezone="Europe/London",
            ),
            actor="test",
        )
        due = utcnow() - timedelta(seconds=30)
        with ws.db.begin() as conn:
            schedules.update_schedule(conn, saved.id, next_run_at=due)
        outbox = tmp_path / "data" / "outbox"

        def once() -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "scheduler_daemon.py", "--once"],
                cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=180,
            )  # fmt: skip

        first = once()
        assert first.returncode == 0, first.stderr
        sent_first = len(list(message_files(outbox)))
        with ws.db.connect() as conn:
            after = schedules.get_schedule(conn, saved.id)
            run = runs.get_run(conn, after.last_run_id or 0)
        assert run.status is RunStatus.COMPLETED
        assert sent_first == demo_recipients(ws, run.id) > 0
        assert after.next_run_at > utcnow()
        assert "event=schedule.claimed" in first.stderr

        second = once()
        assert second.returncode == 0, second.stderr
        assert len(list(message_files(outbox))) == sent_first
        with ws.db.connect() as conn:
            assert schedules.get_schedule(conn, saved.id).last_run_id == run.id
            assert len([r for r in runs.list_runs(conn) if r.trigger == "schedule"]) == 1
    finally:
        ws.close()


def demo_recipients(ws: Workspace, run_id: int) -> int:
    with ws.db.connect() as conn:
        return deliveries.counts(conn, run_id).sent
