"""A run from QUEUED to its end on the outbox engine, on SQLite and PostgreSQL.

The outbox writes one `<delivery id>-<recipient>.eml` per message; a resend would overwrite
its file, so "nothing sent twice" is checked with a spy on `OutboxSender.send` as well.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import OutboxSender, message_files
from outreach_core.adapters.store import (
    deliveries,
    delivery_claims,
    in_flight,
    runs,
    suppressions,
    templates,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import RunBusy
from outreach_core.services import sending
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, work_once

ACTOR = "test"
DEAD_WORKER = "deadhost:999999:x"
GREETING = TemplateSource("Hello {{ name }}", "<p>Hello {{ name }}</p>", "Hello {{ name }}")


def contacts(count: int) -> list[dict[str, Any]]:
    return [{"email": f"person{i}@example.com", "name": f"Person {i}"} for i in range(count)]


def seed_workflow(
    ws: Workspace,
    outbox: Path,
    rows: list[dict[str, Any]],
    *,
    name: str = "wf",
    batch_size: int = 50,
    template: TemplateSource = GREETING,
) -> Workflow:
    """Audience, template, outbox engine and workflow; unlimited rate so tests do not wait."""
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile("contacts.csv", ["email", "name"], "email", rows),
        template=template,
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=3, batch_size=batch_size, max_attempts=1),
        actor=ACTOR,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Counts every message handed to the outbox, by delivery id."""
    counter: Counter[int] = Counter()
    original = OutboxSender.send

    async def spy(self: OutboxSender, outgoing: Any) -> Any:
        counter[outgoing.delivery_id] += 1
        return await original(self, outgoing)

    monkeypatch.setattr(OutboxSender, "send", spy)
    return counter


def written(outbox: Path) -> dict[int, bytes]:
    """The .eml files in the outbox by delivery id (no temp files left behind)."""
    assert not list(outbox.rglob("*.tmp"))
    return {int(path.name.split("-", 1)[0]): path.read_bytes() for path in message_files(outbox)}


def by_status(ws: Workspace, run_id: int) -> dict[DeliveryStatus, list[int]]:
    result: dict[DeliveryStatus, list[int]] = {}
    with ws.db.connect() as conn:
        for delivery in deliveries.list_deliveries(conn, run_id):
            result.setdefault(delivery.status, []).append(delivery.id)
    return result


def test_full_run_sends_one_message_per_valid_row_and_records_skips(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify QUEUED -> COMPLETED writes one .eml per sendable row and records every skip."""
    rows = [
        {"email": "ann@example.com", "name": "Ann"},
        {"email": "not-an-email", "name": "Broken"},
        {"email": "bob@example.com", "name": "Bob"},
        {"email": "ANN@example.com", "name": "Ann again"},
        {"email": "", "name": "Nobody"},
        {"email": "carl@example.com"},  # no name: render error
        {"email": "dora@example.com", "name": "Dora"},  # suppressed
        {"email": "eve@example.com", "name": "Eve"},
    ]
    workflow = seed_workflow(workspace, outbox, rows, batch_size=2)
    with workspace.db.begin() as conn:
        suppressions.add_suppression(conn, "dora@example.com", reason="unsubscribed", now=utcnow())
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    assert (run.worker_id, run.heartbeat_at) == (None, None)
    assert run.finished_at is not None
    with workspace.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
        counts = deliveries.counts(conn, run_id)
    assert [d.row_number for d in ledger] == list(range(1, len(rows) + 1))
    assert (counts.total, counts.sent, counts.skipped, counts.unsettled) == (8, 3, 5, 0)
    reasons = {d.row_number: (d.reason or "").split(":", 1)[0] for d in ledger}
    assert reasons == {
        1: "",
        2: "invalid_syntax",
        3: "",
        4: "duplicate",
        5: "invalid_syntax",
        6: "render_error",
        7: "suppressed",
        8: "",
    }
    sent = {d.id: d for d in ledger if d.status is DeliveryStatus.SENT}
    files = written(outbox)
    assert set(files) == set(sent)
    assert all(n == 1 for n in sends.values()) and set(sends) == set(sent)
    for delivery_id, raw in files.items():
        message = message_from_bytes(raw, policy=policy.default)
        assert message["X-Outreach-Delivery"] == str(delivery_id)
        assert message["To"].addresses[0].addr_spec == sent[delivery_id].email
        assert message["Message-ID"] == sent[delivery_id].message_id
        assert message["Subject"] == f"Hello {sent[delivery_id].variables['name']}"
        assert sent[delivery_id].attempts == 1 and sent[delivery_id].sent_at is not None


def test_crashed_executor_handed_delivery_becomes_unknown_and_the_rest_are_sent_once(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify a take-over marks unknown only what a dead worker had handed to the engine (never
    resent), and sends the rest of its claimed batch and everything else once."""
    workflow = seed_workflow(workspace, outbox, contacts(10))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    long_ago = utcnow() - timedelta(minutes=10)
    with workspace.db.begin() as conn:
        run = runs.claim_next_run(conn, worker_id=DEAD_WORKER, now=long_ago)
    assert run is not None
    assert sending.freeze_audience(workspace, run)
    with workspace.db.begin() as conn:
        claimed = delivery_claims.claim_pending(
            conn, run_id, worker_id=DEAD_WORKER, limit=3, now=long_ago
        )
        runs.heartbeat(conn, run_id, worker_id=DEAD_WORKER, now=long_ago)
        # the dead worker had handed the first to its engine, not the other two
        assert in_flight.mark_handed(
            conn, claimed[0].id, worker_id=DEAD_WORKER, message_id="<m@x>", now=long_ago
        )
    assert len(claimed) == 3

    finished = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert finished.status is RunStatus.COMPLETED
    ledger = by_status(workspace, run_id)
    unknown = {claimed[0].id}
    assert set(ledger[DeliveryStatus.UNKNOWN]) == unknown
    assert len(ledger[DeliveryStatus.SENT]) == 9
    assert {d.id for d in claimed[1:]} <= set(ledger[DeliveryStatus.SENT])
    assert unknown.isdisjoint(written(outbox)) and unknown.isdisjoint(sends)
    assert set(written(outbox)) == set(ledger[DeliveryStatus.SENT])
    assert max(sends.values()) == 1


def test_acquire_run_raises_run_busy_while_the_holder_is_alive(
    workspace: Workspace, outbox: Path
) -> None:
    """Verify a run held by a live process on this host with a fresh heartbeat is not taken."""
    workflow = seed_workflow(workspace, outbox, contacts(2))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    alive = f"{socket.gethostname()}:{os.getpid()}:x"
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id=alive, now=utcnow())

    with pytest.raises(RunBusy, match=f"being sent by {alive}"):
        sending.acquire_run(workspace, run_id, worker_id=new_worker_id())

    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    assert (run.status, run.worker_id) == (RunStatus.INITIALIZING, alive)
    assert not outbox.exists()


def test_acquire_run_takes_over_from_a_dead_local_process_despite_a_fresh_heartbeat(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify on this host a dead pid is known at once, without waiting for the heartbeat to age."""
    workflow = seed_workflow(workspace, outbox, contacts(3))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    dead_pid = _reaped_pid()
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id=f"{socket.gethostname()}:{dead_pid}:x", now=utcnow())

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    assert len(written(outbox)) == 3 and sum(sends.values()) == 3


def _reaped_pid() -> int:
    """The pid of a child that has exited and been waited for (not reused this soon)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stop_before_start_leaves_the_run_resumable_and_resume_sends_each_once(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify a set StopSignal leaves SENDING with no holder; a later run_to_end completes it."""
    workflow = seed_workflow(workspace, outbox, contacts(5), batch_size=2)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    stop = StopSignal()
    stop.set()

    stopped = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=stop)

    assert stopped.status is RunStatus.SENDING
    assert (stopped.worker_id, stopped.heartbeat_at) == (None, None)
    assert set(by_status(workspace, run_id)) == {DeliveryStatus.PENDING}
    assert written(outbox) == {} and not sends

    resumed = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert resumed.status is RunStatus.COMPLETED
    ledger = by_status(workspace, run_id)
    assert set(ledger) == {DeliveryStatus.SENT}
    assert set(written(outbox)) == set(ledger[DeliveryStatus.SENT])
    assert len(sends) == 5 and max(sends.values()) == 1


class StopAfterBatches(StopSignal):
    """A stop request that arrives after `batches` batches were started."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self.remaining = batches

    def is_set(self) -> bool:
        if self.remaining <= 0:
            return True
        self.remaining -= 1
        return False


def test_stop_mid_run_finishes_the_batch_and_resume_sends_only_the_rest(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify a stop between batches sends the current batch, and resume sends each rest once."""
    workflow = seed_workflow(workspace, outbox, contacts(7), batch_size=3)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    stopped = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopAfterBatches(1))

    assert stopped.status is RunStatus.SENDING and stopped.worker_id is None
    ledger = by_status(workspace, run_id)
    assert (len(ledger[DeliveryStatus.SENT]), len(ledger[DeliveryStatus.PENDING])) == (3, 4)
    assert DeliveryStatus.SENDING not in ledger

    resumed = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert resumed.status is RunStatus.COMPLETED
    assert len(sends) == 7 and max(sends.values()) == 1
    assert len(written(outbox)) == 7


def test_run_fails_when_its_template_version_does_not_compile(
    workspace: Workspace, outbox: Path
) -> None:
    """Verify a broken template version fails the run in INITIALIZING, naming the template."""
    workflow = seed_workflow(workspace, outbox, contacts(2))
    with workspace.db.begin() as conn:  # bypasses the service's compile check on purpose
        templates.save_template(
            conn, name="wf template", subject="Hi {{ name", html=None, text="x", now=utcnow()
        )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.FAILED
    assert run.status_reason is not None
    assert run.status_reason.startswith("template wf template v2: subject: line 1, column 4:")
    assert by_status(workspace, run_id) == {}
    assert not outbox.exists()


def test_recipient_with_non_ascii_local_part_is_sent_as_utf8_and_the_run_completes(
    workspace: Workspace, outbox: Path
) -> None:
    """Verify a non-ASCII local part is written as raw UTF-8 (SMTPUTF8), not an abort."""
    rows = [{"email": "josé@example.com", "name": "José"}, *contacts(2)]
    workflow = seed_workflow(workspace, outbox, rows)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    with workspace.db.connect() as conn:
        [jose, *others] = deliveries.list_deliveries(conn, run_id)
    assert jose.status is DeliveryStatus.SENT
    assert all(d.status is DeliveryStatus.SENT for d in others)
    assert "To: josé@example.com".encode() in written(outbox)[jose.id]


def test_work_once_processes_every_queued_run(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify one daemon pass claims and completes two queued runs, oldest first."""
    first = seed_workflow(workspace, outbox, contacts(3), name="first")
    second = seed_workflow(workspace, outbox, contacts(2), name="second")
    run_ids = [
        services.queue_run(workspace, first.id, trigger="schedule", actor=ACTOR),
        services.queue_run(workspace, second.id, trigger="schedule", actor=ACTOR),
    ]

    done = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal())

    assert [r.id for r in done] == run_ids
    assert all(r.status is RunStatus.COMPLETED for r in done)
    assert len(written(outbox)) == 5
    assert len(sends) == 5 and max(sends.values()) == 1
    assert work_once(workspace, worker_id=new_worker_id(), stop=StopSignal()) == []


def test_work_once_adopts_an_orphaned_run(
    workspace: Workspace, outbox: Path, sends: Counter[int]
) -> None:
    """Verify a daemon pass takes over a run whose executor's heartbeat went stale."""
    workflow = seed_workflow(workspace, outbox, contacts(4))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id=DEAD_WORKER, now=utcnow() - timedelta(minutes=10))

    done = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal())

    assert [(r.id, r.status) for r in done] == [(run_id, RunStatus.COMPLETED)]
    assert len(sends) == 4


def test_work_once_does_nothing_when_stopped(workspace: Workspace, outbox: Path) -> None:
    """Verify a daemon pass with its stop signal set claims nothing."""
    workflow = seed_workflow(workspace, outbox, contacts(1))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    stop = StopSignal()
    stop.set()

    assert work_once(workspace, worker_id=new_worker_id(), stop=stop) == []
    with workspace.db.connect() as conn:
        assert runs.get_run(conn, run_id).status is RunStatus.QUEUED
