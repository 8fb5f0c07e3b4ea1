"""`rotate-key` while processes run: a daemon sending a run and a dashboard's Workspace opened
before the rotation go on under the new key without a restart (SQLite and PostgreSQL).

A secret no key opens (not the key in memory, nor the key file or OUTREACH_SECRET_KEY read
again) pauses the run with the reason and lets it go; the worker carries on.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, runs, tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import Run, SendOptions, Workflow
from outreach_core.domain.states import RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import compliance, keys, sources
from outreach_core.services.sending import (
    StopSignal,
    acquire_run,
    execute,
    freeze_audience,
    new_worker_id,
    work_once,
)

from conftest import REPO, cli_env, make_settings, run_cli, wait_for
from smtp_server import SmtpTestServer

pytestmark = pytest.mark.races

BIG = 2000
NEXT = 30


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def workflow_of(ws: Workspace, name: str, engine_url: str, rows: int) -> Workflow:
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
        options=SendOptions(rate=0, batch_size=50, skip_mx=True, concurrency=4),
        actor="test",
    )


def get_run(ws: Workspace, run_id: int) -> Run:
    with ws.db.connect() as conn:
        return runs.get_run(conn, run_id)


def stop(daemon: subprocess.Popen) -> str:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        _, err = daemon.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        _, err = daemon.communicate()
    return err or ""


def test_rotate_key_mid_run_reaches_the_running_daemon_and_dashboard(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify `rotate-key` (CLI) while a daemon sends 2,000 recipients: the run completes with
    one message per recipient, the same daemon process then sends a run queued after the
    rotation through another stored engine, and a Workspace opened before the rotation (what
    the dashboard caches) passes the engine connection test and stores new secrets under the
    new key."""
    sink.handler.data_delay = 0.02  # slow enough for the rotation to land mid-run
    ws = open_workspace(make_settings(tmp_path, db_url))
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    old_key = key_file.read_bytes()
    daemon = subprocess.Popen(
        [sys.executable, "scheduler_daemon.py", "--interval", "0.5"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = ""
    try:
        big = workflow_of(ws, "big", sink.url, BIG)
        later = workflow_of(ws, "later", sink.url + "&timeout=20", NEXT)
        first = services.queue_run(ws, big.id, trigger="test", actor="test")
        wait_for(lambda: len(sink.handler.received) >= 200, timeout=180, what="200 sends")

        rotated = run_cli(tmp_path, "rotate-key", env=env)
        assert rotated.returncode == 0, rotated.stderr
        assert len(sink.handler.received) < BIG  # the rotation landed mid-run
        assert key_file.read_bytes() != old_key
        second = services.queue_run(ws, later.id, trigger="test", actor="test")

        wait_for(
            lambda: (
                get_run(ws, second).status in (RunStatus.COMPLETED, RunStatus.PAUSED)
                or daemon.poll() is not None
            ),
            timeout=240,
            what="the run queued after the rotation",
        )
        assert daemon.poll() is None, stop(daemon)  # the same process, still running
        assert get_run(ws, first).status is RunStatus.COMPLETED
        assert get_run(ws, second).status is RunStatus.COMPLETED, get_run(ws, second)
        with ws.db.connect() as conn:
            counts = deliveries.counts(conn, first)
            by_worker = deliveries.sent_by_worker(conn, second)
        assert counts.sent == BIG, counts
        assert list(by_worker.values()) == [NEXT]
        [worker] = by_worker
        assert worker is not None and worker.split(":")[1] == str(daemon.pid)

        # the dashboard's Workspace, opened before the rotation: the engine test passes, and
        # a secret it stores now opens in a process started afresh (under the new key)
        [engine] = [e for e in services.list_engines(ws) if e.id in later.engine_ids]
        assert services.test_engine_connection(ws, engine.id).endswith("server answers")
        saved = services.save_engine(
            ws, name="after", url=f"{sink.url}&timeout=21", from_email="a@example.com",
            from_name="", actor="test",
        )  # fmt: skip
        fresh = open_workspace(make_settings(tmp_path, db_url))
        try:
            with fresh.db.connect() as conn:
                token = conn.execute(
                    sa.select(tables.engines.c.url_encrypted).where(tables.engines.c.id == saved.id)
                ).scalar_one()
            assert "timeout=21" in Fernet(key_file.read_bytes()).decrypt(token.encode()).decode()
        finally:
            fresh.close()
    finally:
        err = stop(daemon)
        ws.close()
    assert "Traceback" not in err, err
    assert "cannot be decrypted" not in err, err
    assert "now uses the new key" in err, err  # the daemon moved to the key by itself
    arrived = sink.handler.by_recipient()
    assert len(arrived) == BIG + NEXT
    assert all(len(items) == 1 for items in arrived.values())  # nobody mailed twice


def test_a_secret_no_key_opens_pauses_the_run_and_releases_it(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify an engine whose stored URL opens with no key (neither the one in memory nor the
    key file read again): a daemon's pass pauses the run saying so, holds it no longer, and
    goes on to the next queued run."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        good = workflow_of(ws, "good", sink.url, 3)
        lost = workflow_of(ws, "lost", sink.url + "&timeout=22", 3)
        foreign = Fernet(Fernet.generate_key())
        with ws.db.begin() as conn:
            conn.execute(
                tables.engines.update()
                .where(tables.engines.c.id.in_(lost.engine_ids))
                .values(url_encrypted=foreign.encrypt(sink.url.encode()).decode())
            )
        stuck = services.queue_run(ws, lost.id, trigger="test", actor="test")
        after = services.queue_run(ws, good.id, trigger="test", actor="test")

        done = work_once(ws, worker_id=new_worker_id(), stop=StopSignal())

        assert [r.id for r in done] == [stuck, after]
        paused = get_run(ws, stuck)
        assert paused.status is RunStatus.PAUSED
        assert paused.worker_id is None
        assert "cannot be decrypted" in (paused.status_reason or "")
        assert get_run(ws, after).status is RunStatus.COMPLETED
    finally:
        ws.close()
    assert len(sink.handler.by_recipient()) == 3


def test_a_signing_key_no_key_opens_fails_the_run_before_freezing(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify a run with unsubscribe links whose stored signing key opens with no key: the
    run fails before its audience is frozen, saying so (no delivery row, no holder left
    working on it), and the daemon's pass goes on to the next queued run."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        good = workflow_of(ws, "good", sink.url, 3)
        linked = workflow_of(ws, "linked", sink.url + "&timeout=23", 3)
        options = linked.options.model_copy(
            update={"unsubscribe_base_url": "https://example.com/unsubscribe"}
        )
        compliance.unsubscribe_key(ws)  # made now, then overwritten under a foreign key
        foreign = Fernet(Fernet.generate_key())
        with ws.db.begin() as conn:
            conn.execute(
                tables.signing_keys.update().values(
                    key_encrypted=foreign.encrypt(b"A" * 44).decode()
                )
            )
        stuck = services.queue_run(ws, linked.id, trigger="test", actor="test", options=options)
        after = services.queue_run(ws, good.id, trigger="test", actor="test")

        done = work_once(ws, worker_id=new_worker_id(), stop=StopSignal())

        assert [r.id for r in done] == [stuck, after]
        failed = get_run(ws, stuck)
        assert failed.status is RunStatus.FAILED
        assert "cannot be decrypted" in (failed.status_reason or "")
        with ws.db.connect() as conn:
            assert not deliveries.has_deliveries(conn, stuck)
            assert stuck not in {r.id for r in runs.active_runs(conn)}
        assert get_run(ws, after).status is RunStatus.COMPLETED
    finally:
        ws.close()
    assert len(sink.handler.by_recipient()) == 3


def test_a_frozen_run_whose_signing_key_no_key_opens_pauses_and_is_released(
    tmp_path: Path, db_url: str, sink: SmtpTestServer
) -> None:
    """Verify a run already frozen (SENDING, as after a crash or a resume) whose signing key
    no longer opens: executing it pauses it with the reason and clears its holder, nothing
    is sent, and it stays resumable."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        linked = workflow_of(ws, "linked", sink.url, 3)
        options = linked.options.model_copy(
            update={"unsubscribe_base_url": "https://example.com/unsubscribe"}
        )
        run_id = services.queue_run(ws, linked.id, trigger="test", actor="test", options=options)
        worker = new_worker_id()
        run = acquire_run(ws, run_id, worker_id=worker)
        assert freeze_audience(ws, run)
        with ws.db.begin() as conn:
            conn.execute(
                tables.signing_keys.update().values(
                    key_encrypted=Fernet(Fernet.generate_key()).encrypt(b"A" * 44).decode()
                )
            )

        ended = asyncio.run(execute(ws, get_run(ws, run_id), worker_id=worker, stop=StopSignal()))

        assert ended.status is RunStatus.PAUSED
        assert ended.worker_id is None
        assert "cannot be decrypted" in (ended.status_reason or "")
        with ws.db.connect() as conn:
            assert deliveries.counts(conn, run_id).pending == 3
    finally:
        ws.close()
    assert not sink.handler.received


def test_a_secret_stored_while_a_rotation_commits_is_under_the_new_key(
    tmp_path: Path, db_url: str
) -> None:
    """Verify a process holding the old key storing an engine while rotate-key is between its
    first read and its commit: the engine ends under the new key (the rotation re-encrypts it
    or the writer moves to the new key), and a fresh process opens every stored secret.

    A third connection holds a lock the rotation needs (PostgreSQL: the SQL sources' rows,
    which the rotation reads after the engines; SQLite: the database's write lock) until the
    rotation and the writer have each sent the statement that waits for it."""
    settings = make_settings(tmp_path, db_url)
    stale = open_workspace(settings)  # the dashboard's, opened before the rotation
    rotator = open_workspace(settings)  # the rotate-key command's
    blocker = sa.create_engine(rotator.db.url)
    postgres = rotator.db.dialect.name == "postgresql"
    sources.save_source(
        stale, name="crm", url="postgresql+psycopg://crm:pw@127.0.0.1:5432/crm",
        query="SELECT email FROM people", values={}, actor="t",
    )  # fmt: skip
    services.save_engine(
        stale, name="before", url="smtp://127.0.0.1:2525?tls=none", from_email="a@example.com",
        from_name="", actor="t",
    )  # fmt: skip
    rotation_waits, writer_waits = threading.Event(), threading.Event()

    def on_rotator(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        text = statement.lower()
        if ("for update" in text and "sql_sources" in text) if postgres else _writes(text):
            rotation_waits.set()

    def on_writer(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        text = statement.lower()
        if _writes(text):
            writer_waits.set()

    sa.event.listen(rotator.db, "before_cursor_execute", on_rotator)
    sa.event.listen(stale.db, "before_cursor_execute", on_writer)
    failures: list[BaseException] = []

    def in_thread(work: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    try:
        with blocker.connect() as conn:
            if postgres:
                conn.execute(sa.select(tables.sql_sources.c.id).with_for_update())
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            rotating = in_thread(lambda: keys.rotate_key(rotator, actor="test"))
            assert rotation_waits.wait(60), "the rotation never reached the locked rows"
            writing = in_thread(
                lambda: services.save_engine(
                    stale,
                    name="during",
                    url="smtp://127.0.0.1:2526?tls=none",
                    from_email="a@example.com",
                    from_name="",
                    actor="t",
                )
            )
            assert writer_waits.wait(60), "the writer never reached its write"
            conn.rollback()
        rotating.join(120)
        writing.join(120)
        assert not failures, failures
        new = Fernet((tmp_path / "data" / crypto.KEY_FILE_NAME).read_bytes())
        with rotator.db.connect() as conn:
            stored = dict(
                conn.execute(sa.select(tables.engines.c.name, tables.engines.c.url_encrypted)).all()
            )
        assert "2526" in new.decrypt(stored["during"].encode()).decode()
        fresh = open_workspace(settings)
        try:
            assert {e.name for e in services.list_engines(fresh)} == {"before", "during"}
            for token in stored.values():
                crypto.decrypt(fresh.fernet, token)
        finally:
            fresh.close()
    finally:
        blocker.dispose()
        stale.close()
        rotator.close()


def _writes(statement: str) -> bool:
    return statement.lstrip().startswith(("update", "insert"))
