"""Follow-up steps end to end: a two-step workflow through the loopback SMTP sink.

Step 1 goes to 50 recipients; 5 reply, 3 hard-bounce (and are suppressed), 1 auto-replies
(recorded as the mailbox reader records them) and 1 unsubscribes. Three days later step 2
reaches the 41 others, the auto-replier included, and no one else, each message threaded to
that recipient's step-1 message. (Without the unsubscribe it would reach 42: an automatic reply
does not end the sequence.) In process with a hand-moved clock on SQLite and PostgreSQL; then across two daemon
processes on PostgreSQL, each step sent once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_store import in_threads

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, runs, suppressions
from outreach_core.adapters.store.delivery_events import DeliveryEvent, record_event
from outreach_core.adapters.store.tables import runs as runs_table
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.cadence import Cadence, CadenceKind
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.models import Delivery, SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.steps import StepDefinition
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.daemon import tick
from outreach_core.services import follow_ups
from outreach_core.services import schedules as scheduler
from outreach_core.services.sending import StopSignal, new_worker_id
from tests.fake_clock import HandClock

from conftest import REPO, cli_env, make_settings, run_cli, wait_for
from smtp_server import Received, SmtpTestServer

ACTOR = "test"
RECIPIENTS = 50
#: a Monday, 09:00 in Paris
START = datetime(2030, 6, 3, 7, 0, tzinfo=UTC)
REPLIED, BOUNCED, AUTO, UNSUBSCRIBED = range(0, 5), range(5, 8), 8, 9


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def address(n: int) -> str:
    return f"person{n}@example.com"


def two_step_workflow(
    ws: Workspace, engine_url: str, *, rows: int = RECIPIENTS, second_text: str = "Still there?"
) -> Workflow:
    """Step 1 `Hello {{ name }}`; step 2 three days later, in the same thread."""
    workflow = services.setup_workflow(
        ws,
        name="steps",
        parsed=ParsedFile(
            source="contacts.csv",
            columns=["email", "name"],
            email_column="email",
            rows=[{"email": address(n), "name": f"P{n}"} for n in range(rows)],
        ),
        template=TemplateSource("Hello {{ name }}", None, "Hi {{ name }}, step one"),
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True, batch_size=20, timezone="Europe/Paris"),
        actor=ACTOR,
    )
    second = services.save_template(
        ws, "steps second", TemplateSource("Own subject", None, second_text), actor=ACTOR
    )
    follow_ups.save_steps(
        ws, workflow.id, [StepDefinition(step=2, template_id=second.id, delay_days=3)], actor=ACTOR
    )
    return workflow


def ledger(ws: Workspace, run_id: int) -> list[Delivery]:
    with ws.db.connect() as conn:
        return deliveries.list_deliveries(conn, run_id)


def runs_of_step(ws: Workspace, step: int) -> list[runs.Run]:
    with ws.db.connect() as conn:
        return [r for r in runs.list_runs(conn, limit=1000) if r.step == step]


def record_answers(ws: Workspace, run_id: int, *, at: datetime) -> None:
    """5 replies, 3 hard bounces (suppressed too) and 1 auto-reply, as the mailbox reader
    records them, and 1 unsubscribe."""
    by_email = {d.email: d for d in ledger(ws, run_id)}
    answers = [(n, FeedbackKind.REPLY) for n in REPLIED]
    answers += [(n, FeedbackKind.HARD_BOUNCE) for n in BOUNCED]
    answers.append((AUTO, FeedbackKind.AUTO_REPLY))
    with ws.db.begin() as conn:
        for n, kind in answers:
            delivery = by_email[address(n)]
            record_event(
                conn,
                DeliveryEvent(
                    delivery_id=delivery.id,
                    kind=kind,
                    message_key=f"{delivery.engine_id}:1:{n}",
                    at=at,
                    engine_id=delivery.engine_id,
                    email_normalized=delivery.email_normalized,
                ),
                now=at,
            )
            if kind is FeedbackKind.HARD_BOUNCE:
                suppressions.add_suppression(
                    conn, address(n), reason="bounced", now=at, source="mailbox"
                )
        suppressions.add_suppression(
            conn, address(UNSUBSCRIBED), reason="unsubscribed", now=at, source="unsubscribe link"
        )


def check_step_two(sink: SmtpTestServer, step_one: dict[str, Received]) -> None:
    """41 more messages, each threaded to its recipient's step-1 message, no one else."""
    arrived = sink.handler.by_recipient()
    skipped = {address(n) for n in [*REPLIED, *BOUNCED, UNSUBSCRIBED]}
    assert len(sink.handler.received) == RECIPIENTS + 41 == RECIPIENTS * 2 - len(skipped)
    for n in range(RECIPIENTS):
        email = address(n)
        expected = 1 if email in skipped else 2
        assert len(arrived[email]) == expected, email
        if email in skipped:
            continue
        first, second = (item.message for item in arrived[email])
        assert first["Message-ID"] == step_one[email].message["Message-ID"]
        assert second["In-Reply-To"] == first["Message-ID"]
        assert second["References"] == first["Message-ID"]
        assert second["Subject"] == f"Re: Hello P{n}"
        assert second["Message-ID"] != first["Message-ID"]
        assert "Still there?" in second.get_body(("plain",)).get_content()


def test_two_steps_with_a_hand_clock(workspace: Workspace, sink: SmtpTestServer) -> None:
    """Verify step 1 to 50 through the sink; after 5 replies, 3 hard bounces and 1 auto-reply,
    nothing is queued at 2 days, and at 3 days one tick queues step 2, which reaches the 41
    others (the auto-replier included), threaded; a second tick sends nothing more."""
    clock = HandClock(START)
    workflow = two_step_workflow(workspace, sink.url)
    first_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    worker = new_worker_id()
    tick(workspace, worker, StopSignal(), clock=clock)
    assert runs_of_step(workspace, 1)[0].status is RunStatus.COMPLETED
    assert len(sink.handler.received) == RECIPIENTS
    step_one = {item.rcpt_tos[0]: item for item in sink.handler.received}
    record_answers(workspace, first_id, at=START + timedelta(hours=5))

    clock.advance(days=2)
    tick(workspace, worker, StopSignal(), clock=clock)
    assert runs_of_step(workspace, 2) == []
    assert len(sink.handler.received) == RECIPIENTS

    clock.advance(days=1)
    tick(workspace, worker, StopSignal(), clock=clock)
    tick(workspace, worker, StopSignal(), clock=clock)  # a double tick queues nothing more

    [second] = runs_of_step(workspace, 2)
    assert (second.previous_run_id, second.status) == (first_id, RunStatus.COMPLETED)
    check_step_two(sink, step_one)
    rows = {d.email: d for d in ledger(workspace, second.id)}
    assert {d.step for d in rows.values()} == {2}
    sent = [d.email for d in rows.values() if d.status is DeliveryStatus.SENT]
    assert len(sent) == 41, [(d.email, d.status, d.reason) for d in rows.values()]
    assert rows[address(0)].reason == "sequence_ended: replied"
    assert rows[address(5)].reason == "sequence_ended: bounced"
    assert rows[address(AUTO)].status is DeliveryStatus.SENT
    assert (
        rows[address(UNSUBSCRIBED)].reason == "suppressed: on the suppression list (unsubscribed)"
    )
    by_id = {d.id: d for d in ledger(workspace, first_id)}
    assert all(by_id[d.previous_delivery_id or 0].email == d.email for d in rows.values())
    # the follow-up went out through the engine of the step before
    assert {d.engine_id for d in rows.values() if d.engine_id} == {workflow.engine_id}


def test_three_steps_chain_the_thread_through_the_same_engines(
    sqlite_workspace: Workspace, sink: SmtpTestServer
) -> None:
    """Verify with two engines: step 1 rotates across them, steps 2 and 3 go through the
    engine that sent each recipient the step before; step 3 refers to steps 1 and 2
    (`References` oldest first, `In-Reply-To` step 2) under one `Re:`; a reply to step 1
    that arrives after step 2 was sent still keeps step 3 from that recipient."""
    ws, clock = sqlite_workspace, HandClock(START)
    workflow = two_step_workflow(ws, sink.url, rows=6)
    other = services.save_engine(
        ws,
        name="second engine",
        url=sink.url,
        from_email="other@example.com",
        from_name="Other",
        actor=ACTOR,
    )
    services.update_workflow(
        ws,
        workflow.id,
        name=workflow.name,
        key=workflow.key,
        audience_id=workflow.audience_id,
        template_id=workflow.template_id,
        engine_ids=[workflow.engine_id, other.id],
        options=workflow.options,
        actor=ACTOR,
    )
    [second] = follow_ups.list_steps(ws, workflow.id)
    third = StepDefinition(step=3, template_id=second.template_id, delay_days=2)
    follow_ups.save_steps(ws, workflow.id, [second, third], actor=ACTOR)
    first_id = services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)
    tick(ws, new_worker_id(), StopSignal(), clock=clock)
    clock.advance(days=3)
    tick(ws, new_worker_id(), StopSignal(), clock=clock)
    late_reply = next(d for d in ledger(ws, first_id) if d.email == address(0))
    with ws.db.begin() as conn:
        record_event(
            conn,
            DeliveryEvent(late_reply.id, FeedbackKind.REPLY, "late:1:1", at=clock()),
            now=clock(),
        )
    clock.advance(days=2)
    tick(ws, new_worker_id(), StopSignal(), clock=clock)

    runs_by_step = {step: runs_of_step(ws, step) for step in (1, 2, 3)}
    assert [len(r) for r in runs_by_step.values()] == [1, 1, 1]
    rows = {step: {d.email: d for d in ledger(ws, r[0].id)} for step, r in runs_by_step.items()}
    assert {d.engine_id for d in rows[1].values()} == {workflow.engine_id, other.id}
    for step in (2, 3):
        for email, delivery in rows[step].items():
            if delivery.status is DeliveryStatus.SENT:
                assert delivery.engine_id == rows[step - 1][email].engine_id
    assert rows[3][address(0)].reason == "sequence_ended: replied"
    arrived = sink.handler.by_recipient()
    assert len(arrived[address(0)]) == 2
    for n in range(1, 6):
        one, two, three = (item.message for item in arrived[address(n)])
        assert three["In-Reply-To"] == two["Message-ID"]
        assert three["References"].split() == [one["Message-ID"], two["Message-ID"]]
        assert three["Subject"] == two["Subject"] == f"Re: Hello P{n}"
        assert three["From"] == two["From"] == one["From"]


def test_a_step_removed_before_it_is_due_is_never_sent(
    sqlite_workspace: Workspace, sink: SmtpTestServer
) -> None:
    """Verify a workflow edited to drop step 2 before it is due queues nothing when the
    three days have passed."""
    clock = HandClock(START)
    workflow = two_step_workflow(sqlite_workspace, sink.url, rows=5)
    services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor=ACTOR)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    follow_ups.remove_step(sqlite_workspace, workflow.id, 2, actor=ACTOR)
    clock.advance(days=4)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    assert runs_of_step(sqlite_workspace, 2) == []
    assert len(sink.handler.received) == 5


def test_a_row_the_step_template_cannot_render_is_skipped(
    sqlite_workspace: Workspace, sink: SmtpTestServer
) -> None:
    """Verify step 2's template failing for one row skips that row with render_error and
    sends the others."""
    clock = HandClock(START)
    text = "{{ 100 // (name|length - 3) }}"  # P0..P9 have length 2: only P10 fails
    workflow = two_step_workflow(sqlite_workspace, sink.url, rows=11, second_text=text)
    services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor=ACTOR)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    clock.advance(days=3)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    [second] = runs_of_step(sqlite_workspace, 2)
    rows = ledger(sqlite_workspace, second.id)
    [failed] = [d for d in rows if d.status is DeliveryStatus.SKIPPED]
    assert failed.email == address(10)
    assert (failed.reason or "").startswith("render_error")
    assert sum(d.status is DeliveryStatus.SENT for d in rows) == 10
    assert len(sink.handler.received) == 11 + 10


def test_a_step_added_long_after_a_run_ended_sends_nothing_for_it(
    sqlite_workspace: Workspace, sink: SmtpTestServer
) -> None:
    """Verify runs that ended weeks before their step was due get no follow-up (more than the
    late limit overdue), while the step is still sent after a later run."""
    clock = HandClock(START)
    workflow = two_step_workflow(sqlite_workspace, sink.url, rows=2)
    services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor=ACTOR)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    clock.advance(days=30)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    assert runs_of_step(sqlite_workspace, 2) == []
    [row] = follow_ups.step_reach(sqlite_workspace, workflow.id, first=2, now=clock())[1:]
    assert row.note.startswith("missed")
    later = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor=ACTOR)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    clock.advance(days=3, hours=1)
    tick(sqlite_workspace, new_worker_id(), StopSignal(), clock=clock)
    assert [r.previous_run_id for r in runs_of_step(sqlite_workspace, 2)] == [later]


def test_days_count_in_the_schedules_zone_inside_its_window(
    workspace: Workspace, sink: SmtpTestServer
) -> None:
    """Verify a step after a run that ended 03:00 in New York (the schedule's zone) falls due
    three days later when the schedule's 09:00-17:00 window opens, not before; and that two
    callers racing for it queue one run."""
    clock = HandClock(START)  # 03:00 in New York
    workflow = two_step_workflow(workspace, sink.url, rows=3)
    scheduler.save_schedule(
        workspace,
        scheduler.ScheduleInput(
            workflow_id=workflow.id,
            cadence=Cadence(kind=CadenceKind.DAILY, at="09:00"),
            timezone="America/New_York",
            send_window="09:00-17:00",
            enabled=False,
        ),
        actor=ACTOR,
    )
    services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    tick(workspace, new_worker_id(), StopSignal(), clock=clock)
    due = datetime(2030, 6, 6, 13, 0, tzinfo=UTC)  # Thursday 09:00 in New York
    clock.now = due - timedelta(minutes=1)
    assert follow_ups.queue_due_steps(workspace, clock=clock) == []
    clock.now = due
    queued = in_threads(3, lambda _: follow_ups.queue_due_steps(workspace, clock=clock))
    assert sorted(len(q) for q in queued) == [0, 0, 1]
    assert len(runs_of_step(workspace, 2)) == 1


def start_daemons(count: int, tmp_path: Path, db_url: str) -> list[subprocess.Popen]:
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    return [
        subprocess.Popen(
            [sys.executable, "scheduler_daemon.py", "--interval", "0.3"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def stop_all(daemons: list[subprocess.Popen]) -> list[str]:
    for daemon in daemons:
        if daemon.poll() is None:
            daemon.terminate()
    errors = []
    for daemon in daemons:
        try:
            _, err = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, err = daemon.communicate()
        errors.append(err or "")
    return errors


def move_end(ws: Workspace, run_id: int, *, ago: timedelta) -> None:
    """Make the run look finished `ago` (the daemons read the real clock)."""
    with ws.db.begin() as conn:
        conn.execute(
            sa.update(runs_table)
            .where(runs_table.c.id == run_id)
            .values(finished_at=utcnow() - ago)
        )


@pytest.mark.races
def test_two_daemons_on_postgresql_send_each_step_once(
    tmp_path: Path, postgres_url: str, sink: SmtpTestServer
) -> None:
    """Verify two daemon processes on PostgreSQL: step 1 sent once to 50; at 2 days nothing is
    queued; at 3 days step 2 is queued once and reaches the 41 others once, threaded."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    daemons: list[subprocess.Popen] = []
    try:
        workflow = two_step_workflow(ws, sink.url)
        first_id = services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)
        daemons = start_daemons(2, tmp_path, postgres_url)
        wait_for(
            lambda: runs_of_step(ws, 1)[0].status is RunStatus.COMPLETED,
            timeout=120,
            what="step 1",
        )
        step_one = {item.rcpt_tos[0]: item for item in sink.handler.received}
        record_answers(ws, first_id, at=utcnow())
        move_end(ws, first_id, ago=timedelta(days=2))
        time.sleep(2)  # several ticks of both daemons: not due yet
        assert runs_of_step(ws, 2) == []
        move_end(ws, first_id, ago=timedelta(days=3, minutes=1))
        wait_for(
            lambda: [r.status for r in runs_of_step(ws, 2)] == [RunStatus.COMPLETED],
            timeout=120,
            what="step 2",
        )
        time.sleep(2)  # more ticks: nothing queued twice
        errors = stop_all(daemons)
        assert len(runs_of_step(ws, 2)) == 1
    finally:
        stop_all(daemons)
        ws.close()
    check_step_two(sink, step_one)
    assert len(step_one) == RECIPIENTS
    assert not any("Traceback" in e for e in errors), errors


def test_workflow_step_cli_adds_lists_and_removes(tmp_path: Path) -> None:
    """Verify `workflow-step add/list/remove`: a step added with its template and days, a new
    thread when asked, a bad delay refused with exit 2, a removal taking later steps."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        workflow = two_step_workflow(ws, f"outbox://{tmp_path}/outbox", rows=2)
        follow_ups.save_steps(ws, workflow.id, [], actor=ACTOR)
    finally:
        ws.close()
    added = run_cli(
        tmp_path, "workflow-step", "add", workflow.key, "--template", "steps second", "--days", "3"
    )
    assert added.returncode == 0, added.stderr
    assert "step 2: steps second, 3 days after step 1, same thread (Re:)" in added.stdout
    third = run_cli(
        tmp_path,
        "workflow-step",
        "add",
        workflow.key,
        "--template",
        "steps second",
        "--days",
        "5",
        "--new-thread",
    )
    assert "step 3: steps second, 5 days after step 2, new thread" in third.stdout, third.stderr
    dry = run_cli(tmp_path, "dry-run", str(workflow.id), "--out", str(tmp_path / "dry.csv"))
    assert dry.returncode == 0, dry.stderr
    assert "would send to 2 recipients" in dry.stdout
    assert "step 2 (3 days after step 1): not known yet" in dry.stdout
    assert "step 3 (5 days after step 2): not known yet" in dry.stdout
    bad = run_cli(
        tmp_path,
        "workflow-step",
        "add",
        workflow.key,
        "--template",
        "steps second",
        "--days",
        "400",
    )
    assert bad.returncode == 2 and "1 to 365 days" in bad.stderr
    removed = run_cli(tmp_path, "workflow-step", "remove", workflow.key, "2")
    assert removed.returncode == 0, removed.stderr
    listed = run_cli(tmp_path, "workflow-step", "list", workflow.key)
    assert "step 2" not in listed.stdout and "step 3" not in listed.stdout
