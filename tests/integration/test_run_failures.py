"""No run's data stops a worker (SQLite and PostgreSQL): a run the database refuses while it
freezes is FAILED with the reason and let go, a run that fails while sending is PAUSED with the
reason and let go, neither is retried by itself, and the worker (a daemon process included)
goes on with the other runs.

The database error is a trigger refusing one address's delivery row, the same on both
databases; before this, such an error (PostgreSQL's DataError on a NUL) left the run
INITIALIZING and ended the daemon, and every daemon started after it while taking it over.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import audit, deliveries, runs, schedules
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.cadence import Cadence, CadenceKind
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Run, SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.daemon import tick
from outreach_core.services import schedules as scheduler
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, work_once

from conftest import REPO, cli_env, wait_for

ACTOR = "test"
BOOM = "boom@example.com"
REFUSAL = "refused by a test trigger"


def refuse(ws: Workspace, *, when: str) -> None:
    """A trigger failing the statement that inserts (`when="insert"`) or marks sent
    (`when="sent"`) the delivery of BOOM: a database error in the middle of a run."""
    update = when == "sent"
    if ws.db.dialect.name == "sqlite":
        event = "UPDATE" if update else "INSERT"
        condition = f"NEW.email = '{BOOM}'" + (" AND NEW.status = 'sent'" if update else "")
        statements = [
            f"CREATE TRIGGER refuse_boom BEFORE {event} ON deliveries WHEN {condition} "
            f"BEGIN SELECT RAISE(ABORT, '{BOOM} {REFUSAL}'); END"
        ]
    else:
        event = "UPDATE" if update else "INSERT"
        condition = f"NEW.email = '{BOOM}'" + (" AND NEW.status = 'sent'" if update else "")
        statements = [
            "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION '{BOOM} {REFUSAL}' USING ERRCODE = '22000'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER refuse_boom BEFORE {event} ON deliveries FOR EACH ROW "
            "EXECUTE FUNCTION refuse_boom()",
        ]
    with ws.db.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def allow(ws: Workspace) -> None:
    with ws.db.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER refuse_boom"
            + ("" if ws.db.dialect.name == "sqlite" else " ON deliveries")
        )


def workflow_for(ws: Workspace, outbox: Path, name: str, emails: list[str]) -> Workflow:
    """A workflow mailing `emails` to an outbox."""
    return services.setup_workflow(
        ws, name=name,
        parsed=ParsedFile(f"{name}.csv", ["email"], "email", [{"email": e} for e in emails]),
        template=TemplateSource("Hi", None, "Hello"), engine_url=f"outbox://{outbox}",
        from_email="team@example.com", from_name="Team",
        options=SendOptions(rate=0, skip_mx=True), actor=ACTOR,
    )  # fmt: skip


def queued(ws: Workspace, outbox: Path, name: str, emails: list[str]) -> int:
    """The queued run of a new workflow mailing `emails` to an outbox."""
    workflow = workflow_for(ws, outbox, name, emails)
    return services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)


def get(ws: Workspace, run_id: int) -> Run:
    with ws.db.connect() as conn:
        return runs.get_run(conn, run_id)


def failures_audited(ws: Workspace, run_id: int) -> list[dict]:
    with ws.db.connect() as conn:
        return [
            e for e in audit.latest(conn, search="run.failed") if e["subject"] == f"run {run_id}"
        ]


def test_a_freeze_the_database_refuses_fails_that_run_and_the_worker_goes_on(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify one pass over two queued runs: the one whose freeze the database refuses is
    FAILED with the driver's reason (no SQL, no values), released and audited, nothing of it
    frozen; the other is sent; the next pass leaves the failed one alone."""
    outbox = tmp_path / "outbox"
    bad = queued(workspace, outbox, "bad", ["a1@example.com", BOOM])
    good = queued(workspace, outbox, "good", ["g1@example.com", "g2@example.com"])
    refuse(workspace, when="insert")

    done = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal())
    assert [(r.id, r.status) for r in done] == [
        (bad, RunStatus.FAILED),
        (good, RunStatus.COMPLETED),
    ]
    failed = get(workspace, bad)
    reason = failed.status_reason or ""
    assert reason.startswith("the database refused the run's data while freezing the audience: ")
    assert f"{BOOM} {REFUSAL}" in reason
    assert "INSERT" not in reason and "a1@example.com" not in reason
    assert failed.worker_id is None and failed.finished_at is not None
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, bad).total == 0
        assert deliveries.counts(conn, good).sent == 2
    [entry] = failures_audited(workspace, bad)
    assert entry["detail"] == {"status": "FAILED", "reason": reason}
    assert sorted(p.name.split("-", 1)[1] for p in message_files(outbox)) == [
        "g1@example.com.eml",
        "g2@example.com.eml",
    ]

    assert work_once(workspace, worker_id=new_worker_id(), stop=StopSignal()) == []
    assert get(workspace, bad).status is RunStatus.FAILED


def test_a_run_failing_while_sending_is_paused_with_the_reason_and_not_retried(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a run whose batch cannot be recorded (the database refuses it) is PAUSED with
    the reason and released, a later pass does not take it again, and `resume` once the
    cause is gone finishes it: the batch that may have gone out is `unknown`, never resent."""
    outbox = tmp_path / "outbox"
    run_id = queued(workspace, outbox, "paused", ["p1@example.com", BOOM, "p3@example.com"])
    refuse(workspace, when="sent")

    [paused] = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal())
    assert paused.id == run_id and paused.status is RunStatus.PAUSED
    assert (paused.status_reason or "").startswith(
        "the database refused the run's data while sending: "
    )
    assert f"{BOOM} {REFUSAL}" in (paused.status_reason or "")
    assert paused.worker_id is None and paused.resume_at is None
    assert [e["detail"]["status"] for e in failures_audited(workspace, run_id)] == ["PAUSED"]
    assert work_once(workspace, worker_id=new_worker_id(), stop=StopSignal()) == []
    assert get(workspace, run_id).status is RunStatus.PAUSED

    allow(workspace)
    mailed = len(list(message_files(outbox)))
    resumed = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert resumed.status is RunStatus.COMPLETED
    with workspace.db.connect() as conn:
        statuses = {d.email: d.status for d in deliveries.list_deliveries(conn, run_id)}
    assert set(statuses.values()) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    assert statuses[BOOM] is DeliveryStatus.UNKNOWN
    assert len(list(message_files(outbox))) == mailed  # nothing mailed twice


def _dead_worker_id() -> str:
    """A worker id naming a process of this host that has ended (a crashed daemon)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return f"{socket.gethostname()}:{gone.pid}:crashed1"


def test_a_daemon_fails_the_run_it_takes_over_and_sends_the_next_queued_run(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify the crash loop is gone: a run left INITIALIZING by a crashed daemon, whose
    freeze the database refuses, is taken over by a daemon process that fails it with the
    reason (`event=run.failed`), keeps running, sends a run queued afterwards, never retries
    the failed one, and exits 0 on SIGTERM."""
    outbox = tmp_path / "outbox"
    bad = queued(workspace, outbox, "bad", ["a1@example.com", BOOM])
    with workspace.db.begin() as conn:  # the state a daemon that died on the freeze left
        assert runs.claim_next_run(conn, worker_id=_dead_worker_id(), now=utcnow(), run_id=bad)
    refuse(workspace, when="insert")

    daemon = subprocess.Popen(
        [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
        cwd=REPO,
        env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: get(workspace, bad).status is RunStatus.FAILED, what="the run failed")
        assert daemon.poll() is None, "the daemon exited"
        good = queued(workspace, outbox, "good", ["g1@example.com", "g2@example.com"])
        wait_for(lambda: get(workspace, good).status is RunStatus.COMPLETED, what="the next run")
        assert daemon.poll() is None, "the daemon exited"
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            _, err = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
    assert daemon.returncode == 0, err
    assert f"{BOOM} {REFUSAL}" in (get(workspace, bad).status_reason or "")
    assert err.count(f"event=run.failed run={bad} status=FAILED") == 1, err
    assert "Traceback" not in err
    assert len(failures_audited(workspace, bad)) == 1
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, good).sent == 2


def test_send_reports_a_run_the_database_refuses_and_exits_with_its_reason(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify `send` in the foreground: the run the database refuses at freeze ends FAILED
    with the reason on stderr and a non-zero exit, no traceback."""
    refuse(workspace, when="insert")
    contacts = tmp_path / "c.csv"
    contacts.write_text(f"email\nok@example.com\n{BOOM}\n")
    folder = tmp_path / "tpl"
    folder.mkdir()
    (folder / "subject.txt").write_text("Hi")
    (folder / "body.txt").write_text("Hello")
    done = subprocess.run(
        [sys.executable, "-m", "outreach_core", "send", str(contacts), "--template", str(folder),
         "--engine", f"outbox://{tmp_path / 'outbox'}", "--skip-mx"],
        cwd=REPO, env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert f"{BOOM} {REFUSAL}" in done.stderr
    run_id = int(done.stdout.splitlines()[0].removeprefix("run: "))
    assert get(workspace, run_id).status is RunStatus.FAILED
    with workspace.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM deliveries")).scalar() == 0


def test_an_error_outside_any_run_ends_the_tick_not_the_daemon(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify an error the daemon's tick meets outside a run (here the database refusing the
    run a due schedule queues) ends that pass with `event=tick.failed`, naming the error's
    type and place but not its message; the next pass, the cause gone, sends the schedule."""
    outbox = tmp_path / "outbox"
    workflow_id = workflow_for(workspace, outbox, "scheduled", ["s1@example.com"]).id
    saved = scheduler.save_schedule(
        workspace,
        scheduler.ScheduleInput(
            workflow_id=workflow_id, cadence=Cadence(kind=CadenceKind.DAILY, at="09:00")
        ),
        actor=ACTOR,
    )
    with workspace.db.begin() as conn:
        schedules.update_schedule(conn, saved.id, next_run_at=utcnow() - timedelta(seconds=1))
    sqlite = workspace.db.dialect.name == "sqlite"
    with workspace.db.begin() as conn:
        if sqlite:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_runs() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = '23000'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs FOR EACH ROW "
                "EXECUTE FUNCTION refuse_runs()"
            )
    worker = new_worker_id()
    with caplog.at_level(logging.INFO, logger="outreach.daemon"):
        tick(workspace, worker, StopSignal())
    failed = [r.getMessage() for r in caplog.records if "event=tick.failed" in r.getMessage()]
    assert len(failed) == 1 and "error=IntegrityError at=" in failed[0], caplog.text
    assert REFUSAL not in caplog.text

    with workspace.db.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_runs" + ("" if sqlite else " ON runs"))
    tick(workspace, worker, StopSignal())
    with workspace.db.connect() as conn:
        [run] = runs.list_runs(conn, limit=10)
    assert run.status is RunStatus.COMPLETED and run.trigger == "schedule"
