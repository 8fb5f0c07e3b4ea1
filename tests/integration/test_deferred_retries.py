"""Deferred mail is retried by the daemon on a schedule, with no one pressing retry, on SQLite
and PostgreSQL.

A loopback SMTP server greylists every recipient for 10 minutes of the test's clock (451 to
each RCPT until then); the test only queues the run and drives the daemon's pass
(`work_once`) while it moves the clock. Every recipient is delivered exactly once. Between
retries the run stays SENDING with no holder and no pass touches it; a server that always
answers 451 makes the rows expire at the lifetime with its last reply, and the run completes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_clock import HandClock

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Delivery, Run, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, work_once

from conftest import cli_env, run_cli
from smtp_server import Greylist, SmtpTestServer

START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
RECIPIENTS = [f"r{n}@example.org" for n in range(5)]
GREYLISTED = "451 4.7.1 greylisted, try again later"
QUICK = 2  # quick tries of the first send (kept low: they sleep for real)


@pytest.fixture
def clock() -> HandClock:
    return HandClock(START)


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        yield smtp


def queue(
    ws: Workspace, server: SmtpTestServer, *, name: str = "greylisted", **options: object
) -> int:
    """A queued run of RECIPIENTS through the server; nobody sends it but the daemon's pass."""
    workflow = services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": r} for r in RECIPIENTS]),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=server.url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(
            rate=0, max_attempts=QUICK, skip_mx=True, auto_pause_failure_rate=0, **options
        ),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def daemon_pass(ws: Workspace, clock: HandClock) -> list[Run]:
    return work_once(ws, worker_id=new_worker_id(), stop=StopSignal(), clock=clock)


def ledger(ws: Workspace, run_id: int) -> dict[str, Delivery]:
    with ws.db.connect() as conn:
        return {d.email: d for d in deliveries.list_deliveries(conn, run_id)}


def refused(server: SmtpTestServer, reply: str) -> str:
    """A RCPT refusal as the SMTP engine reports it."""
    return f"smtp 127.0.0.1:{server.port}: RCPT refused: {reply}"


def assert_waiting(
    ws: Workspace, server: SmtpTestServer, run_id: int, *, next_at: datetime
) -> None:
    """The run is SENDING, held by no one, and says what it waits for."""
    summary = services.run_summary(ws, run_id)
    run = summary.run
    assert run.status is RunStatus.SENDING
    assert (run.worker_id, run.heartbeat_at, run.resume_at) == (None, None, next_at)
    expected = f"waiting for {len(RECIPIENTS)} retries, next at {next_at:%Y-%m-%d %H:%M:%S} UTC"
    assert run.status_reason == expected
    assert (summary.retries_waiting, summary.next_retry_at) == (len(RECIPIENTS), next_at)
    rows = ledger(ws, run_id).values()
    assert {d.status for d in rows} == {DeliveryStatus.DEFERRED}
    assert {d.next_attempt_at for d in rows} == {next_at}
    assert {d.reason for d in rows} == {f"transient: {refused(server, GREYLISTED)}"}


def test_greylisted_mail_is_delivered_once_by_the_daemon_on_its_schedule(
    workspace: Workspace, server: SmtpTestServer, clock: HandClock, db_url: str, tmp_path: Path
) -> None:
    """Verify 451s for each recipient's first 10 minutes are retried by the daemon's pass alone
    at +1, +6 and +21 minutes (1, 5, 15 min waits): passes before a retry is due do nothing,
    the run waits SENDING with no holder, and each recipient gets exactly one message."""
    server.handler.greylist = Greylist(clock, timedelta(minutes=10))
    run_id = queue(workspace, server)

    [first] = daemon_pass(workspace, clock)  # claims the queued run, first send: all 451

    assert first.id == run_id
    assert server.handler.rcpt_attempts == Counter({r: QUICK for r in RECIPIENTS})
    assert_waiting(workspace, server, run_id, next_at=START + timedelta(minutes=1))
    listed = run_cli(tmp_path, "runs", env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url))
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[9:13] == ["waiting", "next", "retry", "(UTC)"]
    # run, status, created (2 words), sent, failed, unknown, skipped, pending, waiting,
    # next retry (2 words)
    assert row.split()[:12] == [
        str(run_id), "SENDING", *f"{first.created_at:%Y-%m-%d %H:%M:%S}".split(),
        "0", "0", "0", "0", "0", "5", "2030-03-04", "09:01:00",
    ]  # fmt: skip

    schedule = [(1, 6), (6, 21)]  # (due at, next retry at), minutes after START
    for due, following in schedule:
        clock.now = START + timedelta(minutes=due) - timedelta(seconds=1)
        assert daemon_pass(workspace, clock) == []  # not due yet: nothing runs
        clock.now = START + timedelta(minutes=due)
        [retried] = daemon_pass(workspace, clock)
        assert (retried.id, retried.status) == (run_id, RunStatus.SENDING)
        assert_waiting(workspace, server, run_id, next_at=START + timedelta(minutes=following))
    assert server.handler.received == []

    clock.now = START + timedelta(minutes=21)
    [done] = daemon_pass(workspace, clock)

    assert (done.status, done.status_reason, done.finished_at) == (
        RunStatus.COMPLETED,
        None,
        clock.now,
    )
    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter(dict.fromkeys(RECIPIENTS, 1))
    rows = ledger(workspace, run_id)
    for address in RECIPIENTS:
        row = rows[address]
        assert row.status is DeliveryStatus.SENT
        assert row.attempts == QUICK + 3  # the quick tries, two 451 retries, one accepted
        assert row.sent_at == clock.now and row.next_attempt_at is None
        assert row.reason == (
            f"sent on a scheduled retry; before: transient: {refused(server, GREYLISTED)}"
        )
    assert services.run_summary(workspace, run_id).retries_waiting == 0
    clock.advance(hours=2)
    assert daemon_pass(workspace, clock) == []  # nothing left to do
    assert server.handler.rcpt_attempts == Counter(dict.fromkeys(RECIPIENTS, QUICK + 3))


def test_mail_refused_with_451_for_its_whole_lifetime_expires_and_the_run_completes(
    workspace: Workspace, server: SmtpTestServer, clock: HandClock
) -> None:
    """Verify a server that always answers 451 gets retries until the 24 h lifetime (the last
    one brought forward to exactly 24 h), then each row fails as expired with the last reply,
    the run completes, and no message was accepted."""
    for address in RECIPIENTS:
        server.handler.fail_rcpt_times[address] = 10_000
        server.handler.fail_rcpt_reply[address] = "451 4.3.2 mailbox busy"
    run_id = queue(workspace, server)
    daemon_pass(workspace, clock)

    retry_times: list[datetime] = []
    for _ in range(60):  # far more passes than the schedule needs
        run = services.run_summary(workspace, run_id).run
        if run.status is not RunStatus.SENDING:
            break
        assert run.resume_at is not None and run.worker_id is None
        clock.now = run.resume_at
        retry_times.append(clock.now)
        [passed] = daemon_pass(workspace, clock)
        assert passed.id == run_id

    offsets = [t - START for t in retry_times]
    minutes = [1, 6, 21, 51, *(51 + 60 * n for n in range(1, 24))]
    assert offsets == [timedelta(minutes=m) for m in minutes] + [timedelta(hours=24)]
    run = services.run_summary(workspace, run_id).run
    assert (run.status, run.finished_at) == (RunStatus.COMPLETED, START + timedelta(hours=24))
    for row in ledger(workspace, run_id).values():
        assert row.status is DeliveryStatus.FAILED
        assert row.reason == f"expired: 4xx for 24 h: {refused(server, '451 4.3.2 mailbox busy')}"
        assert row.error_kind == "transient" and row.next_attempt_at is None
        assert row.attempts == QUICK + len(retry_times)
    assert server.handler.received == []
    assert server.handler.rcpt_attempts == Counter(
        dict.fromkeys(RECIPIENTS, QUICK + len(retry_times))
    )


def test_a_waiting_run_paused_by_a_user_waits_for_the_user_and_a_cancel_ends_its_retries(
    workspace: Workspace, server: SmtpTestServer, clock: HandClock
) -> None:
    """Verify a user's pause of a waiting run is not resumed by the daemon when its retry is
    due; resumed by the user, it sends the due rows; a cancelled waiting run keeps its rows
    deferred with no retry scheduled, and the daemon leaves it alone."""
    for address in RECIPIENTS:
        server.handler.fail_rcpt_times[address] = QUICK  # refused on the first send only
    run_id = queue(workspace, server)
    daemon_pass(workspace, clock)
    services.pause_run(workspace, run_id, actor="ann")

    clock.advance(hours=1)
    assert daemon_pass(workspace, clock) == []
    paused = services.run_summary(workspace, run_id).run
    assert (paused.status, paused.resume_at, paused.status_reason) == (
        RunStatus.PAUSED,
        None,
        "paused by ann",
    )
    assert server.handler.received == []

    resumed = run_to_end(
        workspace, run_id, worker_id=new_worker_id(), stop=StopSignal(), clock=clock
    )
    assert resumed.status is RunStatus.COMPLETED
    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter(dict.fromkeys(RECIPIENTS, 1))

    server.handler.received.clear()
    for address in RECIPIENTS:
        server.handler.fail_rcpt_times[address] = 10_000
    again = queue(workspace, server, name="cancelled")
    daemon_pass(workspace, clock)
    services.cancel_run(workspace, again, actor="ann", clock=clock)
    clock.advance(hours=2)
    assert daemon_pass(workspace, clock) == []
    summary = services.run_summary(workspace, again)
    assert (summary.run.status, summary.retries_waiting) == (RunStatus.CANCELLED, 0)
    rows = ledger(workspace, again).values()
    assert {(d.status, d.next_attempt_at) for d in rows} == {(DeliveryStatus.DEFERRED, None)}
    assert server.handler.received == []
