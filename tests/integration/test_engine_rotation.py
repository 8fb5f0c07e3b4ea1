"""Several engines per run against real SMTP servers (aiosmtpd) and a loopback SendGrid, on
SQLite and PostgreSQL: rotation by daily quota, quotas counted from the ledger across runs,
the pause until the next UTC midnight and the daemon's resume, per-engine concurrency and
per-domain rate, the opt-in retry of ambiguous sends, and an engine that fails among two.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries, engines, runs
from outreach_core.adapters.store.tables import deliveries as deliveries_table
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import engine_rotation
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Delivery, EngineLimits, SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import sending
from outreach_core.services.sending import StopSignal, lanes, new_worker_id, run_to_end, work_once
from outreach_core.services.sending.shared_limits import SharedBucket, SharedDomains
from tests.fake_clock import FakeClock

from http_providers import FakeSendGrid, sendgrid_error
from smtp_server import SmtpTestServer, free_port

ACTOR = "test"
GREETING = TemplateSource("Hello {{ name }}", "<p>Hello {{ name }}</p>", "Hello {{ name }}")
#: no waiting on rates, no auto-pause, no transient retries: each test sets what it checks
FAST = SendOptions(rate=0, concurrency=4, batch_size=20, max_attempts=1, auto_pause_failure_rate=0)


def contacts(count: int, *, prefix: str = "person", domain: str = "example.com") -> list[dict]:
    return [{"email": f"{prefix}{i}@{domain}", "name": f"P{i}"} for i in range(count)]


def make_engine(ws: Workspace, name: str, url: str, limits: EngineLimits | None = None) -> int:
    engine = services.save_engine(
        ws, name=name, url=url, from_email=f"{name}@example.com", from_name=name, actor=ACTOR
    )
    with ws.db.begin() as conn:
        engines.set_limits(conn, engine.id, limits or EngineLimits())
    return engine.id


def make_workflow(
    ws: Workspace,
    name: str,
    rows: list[dict[str, Any]],
    engine_ids: list[int],
    options: SendOptions = FAST,
) -> Workflow:
    audience = services.import_audience(
        ws, ParsedFile("contacts.csv", ["email", "name"], "email", rows), name=name, actor=ACTOR
    )
    template = services.save_template(ws, f"{name} template", GREETING, actor=ACTOR)
    return services.create_workflow(
        ws,
        name=name,
        audience_id=audience.id,
        template_id=template.id,
        engine_ids=engine_ids,
        options=options,
        actor=ACTOR,
    )


def send(ws: Workspace, workflow: Workflow) -> tuple[int, RunStatus]:
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id, run.status


def ledger(ws: Workspace, run_id: int) -> list[Delivery]:
    with ws.db.connect() as conn:
        return deliveries.list_deliveries(conn, run_id)


def statuses(rows: list[Delivery]) -> Counter[DeliveryStatus]:
    return Counter(d.status for d in rows)


def received_by(server: SmtpTestServer) -> Counter[str]:
    return Counter(r.lower() for item in server.handler.received for r in item.rcpt_tos)


def test_rotation_splits_by_quota_pauses_until_midnight_and_the_daemon_resumes_next_day(
    workspace: Workspace,
) -> None:
    """Verify 80 recipients over quotas 30 and 20: 50 sent split 30/20, the run pauses until
    the next UTC midnight naming both engines; on the next day a work_once pass finishes it,
    and no address receives two messages."""
    with SmtpTestServer() as a, SmtpTestServer() as b:
        ids = [
            make_engine(workspace, "a", a.url, EngineLimits(daily_quota=30)),
            make_engine(workspace, "b", b.url, EngineLimits(daily_quota=20)),
        ]
        workflow = make_workflow(workspace, "rotation", contacts(80), ids)
        before = utcnow()
        run_id, status = send(workspace, workflow)

        assert status is RunStatus.PAUSED
        with workspace.db.connect() as conn:
            run = runs.get_run(conn, run_id)
        midnight = engine_rotation.next_utc_midnight(before)
        assert run.resume_at == midnight
        assert run.status_reason == (
            "daily quota reached on all engines (a: 30/30, b: 20/20); "
            f"resumes at {midnight:%Y-%m-%d} 00:00 UTC"
        )
        assert run.worker_id is None
        rows = ledger(workspace, run_id)
        assert statuses(rows) == {DeliveryStatus.SENT: 50, DeliveryStatus.PENDING: 30}
        sent = [d for d in rows if d.status is DeliveryStatus.SENT]
        assert Counter(d.engine_id for d in sent) == {ids[0]: 30, ids[1]: 20}
        assert all(d.sent_at is not None for d in sent)
        assert all(d.engine_id is None and d.sent_at is None for d in rows if d not in sent)
        # each engine sends from its own mailbox
        assert {i.mail_from for i in a.handler.received} == {"a@example.com"}
        assert {i.mail_from for i in b.handler.received} == {"b@example.com"}
        assert (len(a.handler.received), len(b.handler.received)) == (30, 20)

        # before its time the daemon leaves it alone
        assert work_once(workspace, worker_id=new_worker_id(), stop=StopSignal()) == []

        # the next day: yesterday's sends no longer count against today's quota
        with workspace.db.begin() as conn:
            for delivery in deliveries.list_deliveries(conn, run_id):
                if delivery.sent_at is not None:
                    conn.execute(
                        deliveries_table.update()
                        .where(deliveries_table.c.id == delivery.id)
                        .values(sent_at=delivery.sent_at - timedelta(days=1))
                    )
        done = work_once(
            workspace, worker_id=new_worker_id(), stop=StopSignal(), now=midnight + timedelta(1)
        )

        assert [(r.id, r.status) for r in done] == [(run_id, RunStatus.COMPLETED)]
        rows = ledger(workspace, run_id)
        assert statuses(rows) == {DeliveryStatus.SENT: 80}
        both = received_by(a) + received_by(b)
        assert both == Counter(f"person{i}@example.com" for i in range(80))
        assert done[0].resume_at is None


def test_daily_quota_is_shared_by_runs_of_different_workflows(
    workspace: Workspace, tmp_path: Any
) -> None:
    """Verify two workflows on one engine (quota 10) send 10 in all: the second run sends
    what the first left and pauses, counted from the ledger."""
    engine_id = make_engine(
        workspace, "shared", f"outbox://{tmp_path / 'out'}", EngineLimits(daily_quota=10)
    )
    first = make_workflow(workspace, "first", contacts(6, prefix="f"), [engine_id])
    second = make_workflow(workspace, "second", contacts(6, prefix="s"), [engine_id])

    first_run, first_status = send(workspace, first)
    second_run, second_status = send(workspace, second)

    assert first_status is RunStatus.COMPLETED
    assert statuses(ledger(workspace, first_run)) == {DeliveryStatus.SENT: 6}
    assert second_status is RunStatus.PAUSED
    assert statuses(ledger(workspace, second_run)) == {
        DeliveryStatus.SENT: 4,
        DeliveryStatus.PENDING: 2,
    }
    with workspace.db.connect() as conn:
        reason = runs.get_run(conn, second_run).status_reason
        used = deliveries.engine_usage(
            conn, [engine_id], since=engine_rotation.utc_day_start(utcnow())
        )
    assert reason is not None and reason.startswith(
        "daily quota reached on its engine (shared: 10/10)"
    )
    assert used == {engine_id: 10}
    assert services.engine_usage_today(workspace) == {engine_id: 10}
    assert len(list(message_files(tmp_path / "out"))) == 10


def test_two_executors_at_once_share_one_engines_quota(workspace: Workspace, tmp_path: Any) -> None:
    """Verify two runs executed at the same time (own threads, own connections, as two
    processes would) take exactly the engine's quota of 10 between them."""
    engine_id = make_engine(
        workspace, "shared", f"outbox://{tmp_path / 'out'}", EngineLimits(daily_quota=10)
    )
    small_batches = FAST.model_copy(update={"batch_size": 3})
    flows = [
        make_workflow(workspace, name, contacts(12, prefix=name), [engine_id], small_batches)
        for name in ("left", "right")
    ]
    run_ids = [services.queue_run(workspace, w.id, trigger="test", actor=ACTOR) for w in flows]
    errors: list[BaseException] = []

    def go(run_id: int) -> None:
        try:
            run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    sent = sum(statuses(ledger(workspace, run_id))[DeliveryStatus.SENT] for run_id in run_ids)
    assert sent == 10
    assert len(list(message_files(tmp_path / "out"))) == 10
    with workspace.db.connect() as conn:
        assert {runs.get_run(conn, run_id).status for run_id in run_ids} == {RunStatus.PAUSED}


@pytest.mark.parametrize(("max_concurrency", "peak_at_most"), [(2, 2), (None, 8)])
def test_engine_max_concurrency_caps_simultaneous_transactions(
    workspace: Workspace, max_concurrency: int | None, peak_at_most: int
) -> None:
    """Verify an engine's max_concurrency of 2 holds while the run allows 8 (the server records
    its peak of DATA in progress); without the engine limit the run's 8 is reached beyond 2."""
    with SmtpTestServer() as server:
        server.handler.data_delay = 0.05
        engine_id = make_engine(
            workspace, "capped", server.url, EngineLimits(max_concurrency=max_concurrency)
        )
        options = FAST.model_copy(update={"concurrency": 8, "batch_size": 40})
        workflow = make_workflow(workspace, "capped", contacts(40), [engine_id], options)

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    assert statuses(ledger(workspace, run_id)) == {DeliveryStatus.SENT: 40}
    assert 2 <= server.handler.peak_transactions <= peak_at_most
    if max_concurrency is None:
        assert server.handler.peak_transactions > 2


class HeldMinutes:
    """A clock for the per-domain window that moves only when a send waits on it.

    A waiting send is held until `release()` says the rest of the batch went out (or 30 s
    of real time passed, so a send that blocks the others fails the test instead of hanging);
    then the clock jumps to the end of its wait, as concurrent sleepers on a real clock would.
    """

    def __init__(self, release: Callable[[], bool]) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.release = release

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        target = self.now + seconds
        for _ in range(3000):
            if self.release():
                break
            await asyncio.sleep(0.01)
        self.now = max(self.now, target)


def test_per_domain_rate_holds_one_domain_without_blocking_the_others(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify at most 2 per minute to one domain (on an injected clock), evenly spaced: the
    2nd, 3rd and 4th messages to busy.example wait 30 s each, holding no concurrency slot, so
    every other domain's message goes out meanwhile."""
    rows = contacts(4, prefix="busy", domain="busy.example") + [
        {"email": f"p{i}@d{i}.example", "name": f"P{i}"} for i in range(6)
    ]
    with SmtpTestServer() as server:
        fake = HeldMinutes(lambda: len(server.handler.received) >= 7)
        monkeypatch.setattr(
            lanes,
            "SharedDomains",
            functools.partial(SharedDomains, clock=fake.clock, sleep=fake.sleep),
        )
        engine_id = make_engine(
            workspace, "polite", server.url, EngineLimits(per_domain_per_minute=2)
        )
        options = FAST.model_copy(update={"concurrency": 2})
        workflow = make_workflow(workspace, "polite", rows, [engine_id], options)

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    assert statuses(ledger(workspace, run_id)) == {DeliveryStatus.SENT: 10}
    order = [item.rcpt_tos[0] for item in server.handler.received]
    busy = [i for i, rcpt in enumerate(order) if rcpt.endswith("@busy.example")]
    assert len(busy) == 4
    assert busy[1:] == [7, 8, 9]  # the held three arrive after every other domain's message
    assert fake.waits == [pytest.approx(30.0)] * 3
    assert fake.now == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("engine_rate", "run_rate", "clock_at_end"),
    [
        (10.0, 0.0, 2.9),  # the engine's 10/s holds against an unlimited run
        (1000.0, 10.0, 2.9),  # the run's 10/s holds against a faster engine
        (None, 0.0, 0.0),  # neither limits: nothing waits
    ],
)
def test_the_tighter_of_the_engines_and_the_runs_token_bucket_holds(
    workspace: Workspace,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    engine_rate: float | None,
    run_rate: float,
    clock_at_end: float,
) -> None:
    """Verify 30 sequential sends with burst 1 at 10/s take 2.9 s of (injected) clock whether
    the engine or the run sets the 10/s."""
    fake = FakeClock()
    bucket = functools.partial(SharedBucket, clock=fake.clock, sleep=fake.sleep)
    monkeypatch.setattr(lanes, "SharedBucket", bucket)
    monkeypatch.setattr(sending.context, "SharedBucket", bucket)
    engine_id = make_engine(
        workspace,
        "paced",
        f"outbox://{tmp_path / 'out'}",
        EngineLimits(rate_per_second=engine_rate, burst=1 if engine_rate else None),
    )
    options = FAST.model_copy(update={"rate": run_rate, "burst": 1, "concurrency": 1})
    workflow = make_workflow(workspace, "paced", contacts(30), [engine_id], options)

    run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    assert statuses(ledger(workspace, run_id)) == {DeliveryStatus.SENT: 30}
    assert fake.now == pytest.approx(clock_at_end, abs=1e-6)


@pytest.mark.parametrize("opt_in", [True, False])
def test_ambiguous_send_is_retried_exactly_once_only_when_the_workflow_allows_it(
    workspace: Workspace, opt_in: bool
) -> None:
    """Verify a drop after DATA: with retry_ambiguous_once the send is tried exactly twice and
    the ledger says why (sent when the retry is accepted, unknown when it drops again);
    without the option it is unknown after one attempt and never retried."""
    with SmtpTestServer() as server:
        server.handler.drop_after_data.add("person0@example.com")
        server.handler.drop_after_data_times["person1@example.com"] = 1
        engine_id = make_engine(workspace, "smtp", server.url)
        options = FAST.model_copy(update={"retry_ambiguous_once": opt_in})
        workflow = make_workflow(workspace, "ambiguous", contacts(4), [engine_id], options)

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    rows = {d.email: d for d in ledger(workspace, run_id)}
    always, once = rows["person0@example.com"], rows["person1@example.com"]
    got = received_by(server)
    assert got["person2@example.com"] == got["person3@example.com"] == 1
    if opt_in:
        assert (always.status, always.attempts) == (DeliveryStatus.UNKNOWN, 2)
        assert server.handler.rcpt_attempts["person0@example.com"] == 2
        assert always.reason is not None
        assert always.reason.startswith("ambiguous: ")
        assert "retried once because the workflow allows it; then ambiguous: " in always.reason
        assert (once.status, once.attempts) == (DeliveryStatus.SENT, 2)
        assert once.reason is not None
        assert once.reason.endswith("retried once because the workflow allows it")
        assert got["person1@example.com"] == 1
    else:
        for row in (always, once):
            assert (row.status, row.attempts, row.error_kind) == (
                DeliveryStatus.UNKNOWN,
                1,
                "ambiguous",
            )
            assert row.reason is not None and "retried" not in row.reason
        assert server.handler.rcpt_attempts["person0@example.com"] == 1
        assert server.handler.rcpt_attempts["person1@example.com"] == 1
        assert got["person1@example.com"] == 0
    # an unknown delivery still counts against the engine's quota: it may have gone out
    with workspace.db.connect() as conn:
        used = deliveries.engine_usage(
            conn, [engine_id], since=engine_rotation.utc_day_start(utcnow())
        )
    assert used == {engine_id: 4}


def test_http_5xx_is_retried_once_with_the_option_and_the_ledger_says_so(
    workspace: Workspace,
) -> None:
    """Verify a SendGrid 500 (ambiguous) with retry_ambiguous_once is sent again exactly once:
    accepted on the retry it is `sent` with 2 attempts and the reason; a second 500 leaves it
    `unknown` after 2 requests."""
    with FakeSendGrid("key") as fake:
        fake.script["person0@example.com"] = [sendgrid_error(500, "internal error")]
        fake.script["person1@example.com"] = [sendgrid_error(500, "internal error")] * 2
        engine_id = make_engine(workspace, "sg", f"sendgrid://key@?endpoint={fake.endpoint}")
        options = FAST.model_copy(update={"retry_ambiguous_once": True})
        workflow = make_workflow(workspace, "http-ambiguous", contacts(3), [engine_id], options)

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    rows = {d.email: d for d in ledger(workspace, run_id)}
    once, twice, fine = (rows[f"person{i}@example.com"] for i in range(3))
    assert (once.status, once.attempts) == (DeliveryStatus.SENT, 2)
    assert once.provider_message_id is not None
    assert "retried once because the workflow allows it" in (once.reason or "")
    assert (twice.status, twice.attempts, twice.error_kind) == (
        DeliveryStatus.UNKNOWN,
        2,
        "ambiguous",
    )
    assert (fine.status, fine.attempts, fine.reason) == (DeliveryStatus.SENT, 1, None)
    assert [fake.sent_to(f"person{i}@example.com") for i in range(3)] == [2, 2, 1]
    assert "key@" not in (twice.reason or "")


def test_engine_with_bad_credentials_leaves_rotation_and_the_run_continues(
    workspace: Workspace,
) -> None:
    """Verify a SendGrid engine with a refused key, listed first, is taken out of rotation and
    every recipient is sent exactly once through the other engine; the key is never echoed."""
    with FakeSendGrid("right-key") as fake, SmtpTestServer() as server:
        bad = make_engine(workspace, "sg", f"sendgrid://wrong-key@?endpoint={fake.endpoint}")
        good = make_engine(workspace, "smtp", server.url)
        workflow = make_workflow(workspace, "failover", contacts(30), [bad, good])

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.COMPLETED
    rows = ledger(workspace, run_id)
    assert statuses(rows) == {DeliveryStatus.SENT: 30}
    assert {d.engine_id for d in rows} == {good}
    assert received_by(server) == Counter(f"person{i}@example.com" for i in range(30))
    assert fake.seen == []  # refused at authorisation: nothing was accepted for sending
    assert all("wrong-key" not in (d.reason or "") for d in rows)


def test_run_pauses_naming_each_engines_error_when_no_engine_is_left(
    workspace: Workspace,
) -> None:
    """Verify when both engines fail at engine level the run pauses without a resume time,
    its reason names each engine's error and no secret, and nothing was sent."""
    with FakeSendGrid("right-key") as fake:
        bad_key = make_engine(workspace, "sg", f"sendgrid://wrong-key@?endpoint={fake.endpoint}")
        closed = make_engine(workspace, "down", f"smtp://127.0.0.1:{free_port()}?tls=none")
        workflow = make_workflow(workspace, "stuck", contacts(5), [bad_key, closed])

        run_id, status = send(workspace, workflow)

    assert status is RunStatus.PAUSED
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    assert run.resume_at is None
    reason = run.status_reason or ""
    assert reason.startswith("engine error on every engine (sg: ")
    assert "; down: smtp 127.0.0.1:" in reason
    assert "wrong-key" not in reason
    assert statuses(ledger(workspace, run_id)) == {DeliveryStatus.PENDING: 5}


def test_work_once_never_resumes_a_users_pause(workspace: Workspace, tmp_path: Any) -> None:
    """Verify a run paused by a user (no resume time) stays PAUSED through a daemon pass,
    however late it is."""
    engine_id = make_engine(workspace, "o", f"outbox://{tmp_path / 'out'}")
    workflow = make_workflow(workspace, "manual", contacts(3), [engine_id])
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    now = utcnow()
    with workspace.db.begin() as conn:
        for expected, target in [
            (RunStatus.QUEUED, RunStatus.INITIALIZING),
            (RunStatus.INITIALIZING, RunStatus.SENDING),
        ]:
            runs.set_run_status(conn, run_id, expected=expected, target=target, now=now)
    services.pause_run(workspace, run_id, actor="ann")

    done = work_once(
        workspace, worker_id=new_worker_id(), stop=StopSignal(), now=now + timedelta(days=30)
    )

    assert run_id not in [r.id for r in done]
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    assert (run.status, run.resume_at, run.status_reason) == (
        RunStatus.PAUSED,
        None,
        "paused by ann",
    )


def test_quota_counts_sent_unknown_and_sending_from_today_only(
    workspace: Workspace, tmp_path: Any
) -> None:
    """Verify engine_usage counts sent, unknown and in-flight rows handed to the engine today,
    and not failed, deferred, pending ones or yesterday's."""
    engine_id = make_engine(workspace, "o", f"outbox://{tmp_path / 'out'}")
    workflow = make_workflow(workspace, "usage", contacts(7), [engine_id])
    run_id, _ = send(workspace, workflow)
    now = utcnow()
    ids = [d.id for d in ledger(workspace, run_id)]
    states = [
        (DeliveryStatus.SENT, now),
        (DeliveryStatus.UNKNOWN, now),
        (DeliveryStatus.SENDING, now),
        (DeliveryStatus.SENT, now - timedelta(days=1)),
        (DeliveryStatus.FAILED, None),
        (DeliveryStatus.DEFERRED, None),
        (DeliveryStatus.PENDING, None),
    ]
    with workspace.db.begin() as conn:
        for delivery_id, (status, sent_at) in zip(ids, states, strict=True):
            conn.execute(
                sa.update(deliveries_table)
                .where(deliveries_table.c.id == delivery_id)
                .values(status=status, sent_at=sent_at, engine_id=engine_id)
            )
        used = deliveries.engine_usage(
            conn, [engine_id, engine_id + 1000], since=engine_rotation.utc_day_start(now)
        )
    assert used == {engine_id: 3, engine_id + 1000: 0}
