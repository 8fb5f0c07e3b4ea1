"""A run against a real SMTP server (aiosmtpd) that fails on purpose.

421 and 451 for some recipients, 550 for chosen ones, a connection dropped after DATA, a
server too slow to answer DATA, and one that is slow but in time. Every valid recipient ends
delivered exactly once or in the state its fault calls for; 550s are tried once; transient
replies are retried up to the run's attempt limit; the run's counts equal the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from smtp_server import SmtpTestServer

MAX_ATTEMPTS = 3
#: the SMTP client's timeout in the engine URL; `too_slow` answers DATA after twice that, and
#: `slowish` after 0.1 s: a wide margin, so a loaded machine cannot turn "in time" into a timeout
TIMEOUT_S = 2.0

#: recipient -> (expected status, expected attempts, expected RCPTs seen by the server)
EXPECTED: dict[str, tuple[DeliveryStatus, int, int]] = {
    "refused1@example.org": (DeliveryStatus.FAILED, 1, 1),  # 550: never retried
    "refused2@example.org": (DeliveryStatus.FAILED, 1, 1),
    "greylisted1@example.org": (DeliveryStatus.SENT, 2, 2),  # 451 once, then accepted
    "greylisted2@example.org": (DeliveryStatus.SENT, 3, 3),  # 451 twice, then accepted
    "busy@example.org": (DeliveryStatus.SENT, 2, 2),  # 421 once, then accepted
    # 452 always: deferred, its scheduled retry waits for the daemon
    "full@example.org": (DeliveryStatus.DEFERRED, MAX_ATTEMPTS, MAX_ATTEMPTS),
    "dropped@example.org": (DeliveryStatus.UNKNOWN, 1, 1),  # connection gone after DATA
    "too_slow@example.org": (DeliveryStatus.UNKNOWN, 1, 1),  # DATA answer after the timeout
    "slowish@example.org": (DeliveryStatus.SENT, 1, 1),  # slow, but in time
}
PLAIN = [f"ok{n}@example.org" for n in range(20)]


@pytest.fixture
def faulty_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        handler = server.handler
        handler.refuse_rcpt.update(
            {
                "refused1@example.org": "550 5.1.1 no such user",
                "refused2@example.org": "550 5.7.1 rejected by policy",
            }
        )
        handler.fail_rcpt_times.update(
            {"greylisted1@example.org": 1, "greylisted2@example.org": 2, "busy@example.org": 1}
        )
        handler.fail_rcpt_reply["busy@example.org"] = "421 4.3.2 too busy, try later"
        handler.fail_rcpt_times["full@example.org"] = 99
        handler.fail_rcpt_reply["full@example.org"] = "452 4.2.2 mailbox full"
        handler.drop_after_data.add("dropped@example.org")
        handler.slow_data.update(
            {"too_slow@example.org": TIMEOUT_S * 2, "slowish@example.org": 0.1}
        )
        yield server


def test_faults_end_in_their_stated_states_and_nothing_is_sent_twice(
    workspace: Workspace, faulty_server: SmtpTestServer
) -> None:
    """Verify each SMTP fault ends in its state with bounded attempts, valid recipients get at
    most one message, sent ones exactly one, and the run's counts equal the ledger."""
    recipients = PLAIN[:10] + list(EXPECTED) + PLAIN[10:]
    workflow = services.setup_workflow(
        workspace,
        name="faults",
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": r} for r in recipients]),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=f"{faulty_server.url}&timeout={TIMEOUT_S}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=4, batch_size=8, max_attempts=MAX_ATTEMPTS),
        actor="test",
    )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    # everything else settled: the run waits, held by no one, for the deferred row's retry
    assert (run.status, run.worker_id) == (RunStatus.SENDING, None)
    assert (run.status_reason or "").startswith("waiting for 1 retry, next at ")
    with workspace.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, run_id)}
        counts = deliveries.counts(conn, run_id)
    handler = faulty_server.handler
    for address, (status, attempts, rcpts) in EXPECTED.items():
        row = ledger[address]
        assert (address, row.status, row.attempts) == (address, status, attempts)
        assert handler.rcpt_attempts[address] == rcpts, address
    for address in PLAIN:
        assert ledger[address].status is DeliveryStatus.SENT
        assert (handler.rcpt_attempts[address], ledger[address].attempts) == (1, 1)

    arrived = Counter({k: len(v) for k, v in handler.by_recipient().items()})
    assert max(arrived.values()) == 1  # nobody got two messages
    sent = {a for a, d in ledger.items() if d.status is DeliveryStatus.SENT}
    assert sent <= set(arrived) and len(sent) == len(PLAIN) + 4
    assert set(arrived) - sent <= {"too_slow@example.org"}  # accepted after we gave up: unknown
    assert "dropped@example.org" not in arrived

    assert ledger["refused1@example.org"].error_kind == "permanent"
    assert "550" in (ledger["refused1@example.org"].reason or "")
    assert ledger["full@example.org"].error_kind == "transient"
    assert ledger["full@example.org"].next_attempt_at == run.resume_at
    assert ledger["dropped@example.org"].error_kind == "ambiguous"
    by_status = Counter(d.status for d in ledger.values())
    assert (counts.sent, counts.failed, counts.deferred, counts.unknown, counts.total) == (
        by_status[DeliveryStatus.SENT],
        by_status[DeliveryStatus.FAILED],
        by_status[DeliveryStatus.DEFERRED],
        by_status[DeliveryStatus.UNKNOWN],
        len(recipients),
    )
    assert (counts.sent, counts.failed, counts.deferred, counts.unknown) == (24, 2, 1, 2)
    summary = services.run_summary(workspace, run_id)
    assert summary.counts == counts


def test_run_auto_pauses_when_too_many_of_the_last_50_sends_fail(
    sqlite_workspace: Workspace,
) -> None:
    """Verify a list where 1 in 3 is refused pauses after 50 sends, with the reason, and the
    rest stays pending instead of being burnt."""
    with SmtpTestServer() as server:
        recipients = [f"r{n}@example.org" for n in range(120)]
        for address in recipients[::3]:
            server.handler.refuse_rcpt[address] = "550 5.1.1 no such user"
        workflow = services.setup_workflow(
            sqlite_workspace,
            name="auto-pause",
            parsed=ParsedFile("c.csv", ["email"], "email", [{"email": r} for r in recipients]),
            template=TemplateSource("Hello", None, "Hello there"),
            engine_url=server.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, concurrency=4, batch_size=10, max_attempts=1),
            actor="test",
        )
        run_id = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor="test")
        run = run_to_end(sqlite_workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.PAUSED
    assert (run.status_reason or "").startswith("auto-pause: 17 of the last 50 sends failed")
    with sqlite_workspace.db.connect() as conn:
        counts = deliveries.counts(conn, run_id)
    assert counts.sent + counts.failed == 50 and counts.pending == 70
