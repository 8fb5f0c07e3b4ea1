"""The mailbox reader and follow-up steps together: what comes back to the engine's own
mailbox (Twisted's IMAP server) decides who gets step 2.

Step 1 goes to 50 recipients through the loopback SMTP sink. Into the engine's mailbox go 5
replies threaded to their step-1 messages, 3 hard bounces (the Postfix, Exim and Gmail DSN
layouts) and 1 automatic reply; 1 recipient unsubscribes. One pass of the reader records them;
three days later step 2 reaches the 41 others (the auto-replier included), threaded, and no one
else. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from test_follow_up_steps import (
    AUTO,
    BOUNCED,
    RECIPIENTS,
    REPLIED,
    START,
    UNSUBSCRIBED,
    address,
    check_step_two,
    ledger,
    runs_of_step,
    two_step_workflow,
)

from outreach_core import services
from outreach_core.adapters.store import suppressions
from outreach_core.adapters.store.tables import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Feedback
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.entrypoints.daemon import tick
from outreach_core.services import compliance, feedback_mailboxes
from outreach_core.services.sending import StopSignal, new_worker_id
from tests.fake_clock import HandClock
from tests.feedback_fixtures import aimed
from tests.imap_server import ImapTestServer
from tests.smtp_server import SmtpTestServer

PASSWORD = "steps-mailbox-pw"
DSN_SAMPLES = ("postfix_hard.eml", "exim_hard.eml", "gmail_hard.eml")


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    with ImapTestServer(user="team", password=PASSWORD) as server:
        yield server


def test_replies_and_bounces_read_from_the_mailbox_end_the_sequence(
    workspace: Workspace, sink: SmtpTestServer, imap: ImapTestServer
) -> None:
    """Verify the reader's verdicts (not injected events) decide step 2's recipients: 41 get
    it, threaded to their step-1 message; the 5 who replied, the 3 who bounced and the one who
    unsubscribed do not; a second reader pass records nothing more."""
    clock = HandClock(START)
    workflow = two_step_workflow(workspace, sink.url)
    feedback_mailboxes.set_engine_mailbox(workspace, workflow.engine_id, imap.url(), actor="test")
    first_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
    worker = new_worker_id()
    tick(workspace, worker, StopSignal(), clock=clock)
    assert len(sink.handler.received) == RECIPIENTS
    step_one = {item.rcpt_tos[0]: item for item in sink.handler.received}

    by_email = {d.email: d for d in ledger(workspace, first_id)}
    for n in REPLIED:
        imap.append(aimed("reply_threaded.eml", by_email[address(n)]))
    for n, name in zip(BOUNCED, DSN_SAMPLES, strict=True):
        imap.append(aimed(name, by_email[address(n)]))
    # the vacation notice comes from the recipient's own address and names no message of ours
    vacation = aimed("cpanel_auto_reply.eml", by_email[address(AUTO)])
    imap.append(vacation.replace(b"claire.dubois@relecloud.example", address(AUTO).encode()))
    with workspace.db.begin() as conn:
        suppressions.add_suppression(
            conn, address(UNSUBSCRIBED), reason="unsubscribed", now=START, source="test"
        )

    [report] = feedback_mailboxes.read_all(workspace, holder=worker)
    assert report.error is None
    assert report.counts == {"reply": 5, "hard_bounce": 3, "auto_reply": 1}, report.counts
    with workspace.db.connect() as conn:
        after = {
            row.email: row.feedback and Feedback(row.feedback)
            for row in conn.execute(
                sa.select(deliveries.c.email, deliveries.c.feedback).where(
                    deliveries.c.run_id == first_id
                )
            )
        }
    assert [n for n in range(RECIPIENTS) if after[address(n)] is Feedback.REPLIED] == list(REPLIED)
    assert [n for n in range(RECIPIENTS) if after[address(n)] is Feedback.BOUNCED] == list(BOUNCED)
    assert after[address(AUTO)] is Feedback.AUTO_REPLIED
    listed = {s.email_normalized: str(s.reason) for s in compliance.list_suppressions(workspace)}
    assert {address(n): "bounced" for n in BOUNCED}.items() <= listed.items()
    [again] = feedback_mailboxes.read_all(workspace, holder=worker)
    assert sum(again.counts.values()) == 0, again.counts

    clock.advance(days=2)
    tick(workspace, worker, StopSignal(), clock=clock)
    assert runs_of_step(workspace, 2) == []

    clock.advance(days=1)
    tick(workspace, worker, StopSignal(), clock=clock)
    [second] = runs_of_step(workspace, 2)
    assert second.status is RunStatus.COMPLETED
    check_step_two(sink, step_one)
    rows = ledger(workspace, second.id)
    assert sum(d.status is DeliveryStatus.SENT for d in rows) == 41
