"""Each delivery's `sent_at` is its own send time, not its batch's: a batch is recorded in one
transaction, but every outcome carries the run clock's time when its engine answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope
from fake_clock import HandClock

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from smtp_server import RecordingHandler, SmtpTestServer

#: how far a row's sent_at may precede the sink's receipt of its message (clock reads race
#: the sink's thread; the claim-time stamp this replaces is seconds earlier on a 300-row run)
TOLERANCE = timedelta(milliseconds=50)


class TimedHandler(RecordingHandler):
    """The sink, noting when each recipient's message was accepted (a wall clock, or a
    HandClock moved on by one second per message)."""

    def __init__(self, clock: HandClock | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.accepted_at: dict[str, datetime] = {}

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            if self.clock is not None:
                self.clock.advance(seconds=1)
            at = self.clock.now if self.clock is not None else datetime.now(UTC)
            for rcpt in envelope.rcpt_tos:
                self.accepted_at[rcpt.lower()] = at
        return reply


def sink(handler: TimedHandler) -> SmtpTestServer:
    server = SmtpTestServer()
    server.handler = server.controller.handler = handler
    return server


def queue(ws: Workspace, url: str, count: int, options: SendOptions) -> int:
    rows = [{"email": f"person{i}@example.org"} for i in range(count)]
    workflow = services.setup_workflow(
        ws,
        name="per-message",
        parsed=ParsedFile("c.csv", ["email"], "email", rows),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=url,
        from_email="team@example.com",
        from_name="Team",
        options=options,
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def test_three_hundred_messages_get_their_own_send_times(workspace: Workspace) -> None:
    """Verify 300 recipients sent with concurrency 8 in batches of 50 get (nearly) one
    distinct sent_at each, inside the run's start and end, none before the sink accepted the
    message (less a small tolerance), and updated_at equal to sent_at."""
    handler = TimedHandler()
    options = SendOptions(rate=0, concurrency=8, batch_size=50, max_attempts=1, skip_mx=True)
    with sink(handler) as server:
        run_id = queue(workspace, server.url, 300, options)
        run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    with workspace.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)

    assert run.status is RunStatus.COMPLETED
    assert len(ledger) == 300
    assert {d.status for d in ledger} == {DeliveryStatus.SENT}
    assert len(handler.accepted_at) == 300
    sent_at = [d.sent_at for d in ledger]
    assert all(t is not None for t in sent_at)
    assert len(set(sent_at)) > 250  # per batch, it was 6
    assert run.started_at is not None and run.finished_at is not None
    assert all(run.started_at <= t <= run.finished_at for t in sent_at)  # type: ignore[operator]
    assert all(d.updated_at == d.sent_at for d in ledger)
    early = [
        d.email
        for d in ledger
        if d.sent_at < handler.accepted_at[d.email.lower()] - TOLERANCE  # type: ignore[operator]
    ]
    assert early == []


def test_sent_at_is_the_run_clocks_time_at_each_send(workspace: Workspace) -> None:
    """Verify a clock moved on one second by the sink at each message gives every delivery
    exactly the time the clock read when its message was accepted, across batches, and a
    refused one its own updated_at (sent_at cleared)."""
    start = datetime(2030, 6, 3, 10, 0, tzinfo=UTC)
    clock = HandClock(start)
    handler = TimedHandler(clock)
    handler.refuse_rcpt["person3@example.org"] = "550 5.1.1 no such user"
    # one at a time: the sink's step and the executor's read of the clock never interleave
    options = SendOptions(rate=0, concurrency=1, batch_size=4, max_attempts=1, skip_mx=True)
    with sink(handler) as server:
        run_id = queue(workspace, server.url, 10, options)
        run = run_to_end(
            workspace, run_id, worker_id=new_worker_id(), stop=StopSignal(), clock=clock
        )
    with workspace.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, run_id)}

    assert run.status is RunStatus.COMPLETED
    refused = ledger.pop("person3@example.org")
    assert refused.status is DeliveryStatus.FAILED
    assert refused.sent_at is None
    assert refused.updated_at == start + timedelta(seconds=3)  # after three accepted
    assert {d.status for d in ledger.values()} == {DeliveryStatus.SENT}
    assert {e: d.sent_at for e, d in ledger.items()} == handler.accepted_at
    assert {e: d.updated_at for e, d in ledger.items()} == handler.accepted_at
    assert sorted(handler.accepted_at.values()) == [
        start + timedelta(seconds=n) for n in range(1, 10)
    ]
