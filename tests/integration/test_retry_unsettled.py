""" "Retry deferred and unknown" against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL.

The server answers 451 to chosen recipients until their attempts run out (deferred: the workflow
has no scheduled retries, `retry_lifetime_hours=0`; those are in test_deferred_retries) and drops
the connection after DATA for one (unknown); then it is told to accept. The retry sends exactly
the rows it put back, once each, keeps their earlier attempts and says so in the ledger; the
unknown row is resent only when asked; the workflow's dedupe window does not block the run's
own rows. The `retry` CLI does the same in a subprocess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audit, deliveries, runs
from outreach_core.adapters.store.tables import runs as runs_table
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Delivery, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import IllegalTransition, RunBusy
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from conftest import run_cli
from smtp_server import SmtpTestServer

PLAIN = [f"ok{n}@example.org" for n in range(6)]
GREYLISTED = ["grey1@example.org", "grey2@example.org"]
DROPPED = "dropped@example.org"
MAX_ATTEMPTS = 2


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        for address in GREYLISTED:
            smtp.handler.fail_rcpt_times[address] = 99
        smtp.handler.drop_after_data.add(DROPPED)
        yield smtp


def accept_everything(server: SmtpTestServer) -> None:
    server.handler.fail_rcpt_times.clear()
    server.handler.drop_after_data.clear()


def first_run(ws: Workspace, server: SmtpTestServer) -> int:
    """A run of every recipient, sent to its end: 6 sent, 2 deferred, 1 unknown."""
    recipients = PLAIN[:3] + GREYLISTED + [DROPPED] + PLAIN[3:]
    workflow = services.setup_workflow(
        ws,
        name="retry",
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": r} for r in recipients]),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=server.url,
        from_email="team@example.com",
        from_name="Team",
        # the dedupe window stays on (24 h): it must not block the run's own retried rows
        # no scheduled retries: the deferred rows wait for a person's retry
        options=SendOptions(
            rate=0,
            max_attempts=MAX_ATTEMPTS,
            skip_mx=True,
            auto_pause_failure_rate=0,
            retry_lifetime_hours=0,
        ),
        actor="test",
    )
    assert workflow.options.dedupe_window_hours == 24
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.COMPLETED
    counts = services.run_summary(ws, run_id).counts
    assert (counts.sent, counts.deferred, counts.unknown) == (6, 2, 1)
    return run_id


def ledger(ws: Workspace, run_id: int) -> dict[str, Delivery]:
    with ws.db.connect() as conn:
        return {d.email: d for d in deliveries.list_deliveries(conn, run_id)}


def test_retry_sends_exactly_the_deferred_rows_once_and_unknown_only_when_asked(
    workspace: Workspace, server: SmtpTestServer
) -> None:
    """Verify a retry re-queues the run, sends the deferred rows once each (keeping their
    attempts, noting the manual retry), leaves the unknown row alone until asked, and that
    nobody ever gets two messages."""
    run_id = first_run(workspace, server)
    accept_everything(server)

    moved = services.retry_unsettled(workspace, run_id, include_unknown=False, actor="tester")

    assert moved == 2
    queued = services.run_summary(workspace, run_id).run
    assert queued.status is RunStatus.QUEUED and queued.finished_at is None
    assert "retry of 2 deferred deliveries asked by tester" in (queued.status_reason or "")
    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.COMPLETED
    rows = ledger(workspace, run_id)
    for address in GREYLISTED:
        row = rows[address]
        assert row.status is DeliveryStatus.SENT
        assert row.attempts == MAX_ATTEMPTS + 1  # two 451s in the first round, one send now
        assert (row.reason or "").startswith("manual retry by tester; before: transient:")
    assert rows[DROPPED].status is DeliveryStatus.UNKNOWN
    # the message that may have gone out: the ledger keeps the Message-ID it carried
    [dropped] = server.handler.dropped
    first_id = str(dropped.message["Message-ID"]).strip()
    assert rows[DROPPED].message_id == first_id
    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter({address: 1 for address in PLAIN + GREYLISTED})
    assert server.handler.rcpt_attempts[DROPPED] == 1
    counts = services.run_summary(workspace, run_id).counts
    assert (counts.sent, counts.deferred, counts.unknown, counts.total) == (8, 0, 1, 9)

    assert services.retry_unsettled(workspace, run_id, include_unknown=True, actor="t") == 1
    run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    rows = ledger(workspace, run_id)
    assert rows[DROPPED].status is DeliveryStatus.SENT
    assert "before: ambiguous:" in (rows[DROPPED].reason or "")
    # the resend (the Runs page's retry) carries the same Message-ID: a mailbox can tell the copy
    [resent] = server.handler.by_recipient()[DROPPED]
    assert str(resent.message["Message-ID"]).strip() == first_id == rows[DROPPED].message_id
    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter({address: 1 for address in [*PLAIN, *GREYLISTED, DROPPED]})
    summary = services.run_summary(workspace, run_id)
    assert summary.run.status is RunStatus.COMPLETED
    assert (summary.counts.sent, summary.counts.unsettled) == (9, 0)

    # nothing left: no change, the run stays completed
    assert services.retry_unsettled(workspace, run_id, include_unknown=True, actor="t") == 0
    assert services.run_summary(workspace, run_id).run.status is RunStatus.COMPLETED
    with workspace.db.connect() as conn:
        retries = [e for e in audit.latest(conn) if e["action"] == "run.retry"]
    assert [e["detail"]["include_unknown"] for e in retries] == [True, False]
    assert retries[1]["detail"]["deferred"] == 2 and retries[1]["actor"] == "tester"


def test_retry_refuses_a_run_that_has_not_ended(
    workspace: Workspace, server: SmtpTestServer
) -> None:
    """Verify a QUEUED run cannot be retried, with a message naming what can, and nothing moves."""
    run_id = first_run(workspace, server)
    services.retry_unsettled(workspace, run_id, include_unknown=False, actor="t")  # now QUEUED

    with pytest.raises(IllegalTransition, match="only COMPLETED or PAUSED runs can"):
        services.retry_unsettled(workspace, run_id, include_unknown=True, actor="t")
    rows = ledger(workspace, run_id)
    assert rows[DROPPED].status is DeliveryStatus.UNKNOWN


def test_retry_cli_sends_deferred_rows_and_hints_at_unknown_ones(
    tmp_path: Path, server: SmtpTestServer
) -> None:
    """Verify `retry RUN` exits 1 while an unknown row is left (with the --include-unknown hint),
    `retry RUN --include-unknown` sends it and exits 0, and each address got one message."""
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("email\n" + "\n".join([*PLAIN, *GREYLISTED, DROPPED]) + "\n")
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hello\n")
    (template / "body.txt").write_text("Hello there\n")
    sent = run_cli(
        tmp_path, "send", str(contacts), "--template", str(template), "--engine", server.url,
        "--skip-mx", "--rate", "0", "--retry-hours", "0",
    )  # fmt: skip
    assert sent.returncode == 1, sent.stdout + sent.stderr
    run_id = sent.stdout.splitlines()[0].removeprefix("run: ")
    assert "2 deferred, 1 unknown" in sent.stdout
    accept_everything(server)

    retried = run_cli(tmp_path, "retry", run_id)

    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert "retry: 2 deliveries back to pending" in retried.stdout
    assert "8 sent" in retried.stdout and "1 unknown" in retried.stdout
    again = run_cli(tmp_path, "retry", run_id)
    assert again.returncode == 1
    assert "nothing to retry" in again.stdout
    assert f"retry {run_id} --include-unknown" in again.stderr
    final = run_cli(tmp_path, "retry", run_id, "--include-unknown")
    assert final.returncode == 0, final.stdout + final.stderr
    assert "9 sent" in final.stdout and "0 unknown" in final.stdout
    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter({address: 1 for address in [*PLAIN, *GREYLISTED, DROPPED]})
    missing = run_cli(tmp_path, "retry", "999")
    assert missing.returncode == 2 and "there is no run 999" in missing.stderr


def test_retry_of_an_auto_paused_run_sends_the_deferred_and_the_pending_rows(
    workspace: Workspace,
) -> None:
    """Verify a run that paused itself (too many deferred) is re-queued by a retry, and its
    executor sends the retried rows and the rows still pending, each once, to COMPLETED."""
    greylisted = [f"grey{n}@example.org" for n in range(15)]
    plain = [f"ok{n}@example.org" for n in range(45)]
    with SmtpTestServer() as smtp:
        for address in greylisted:
            smtp.handler.fail_rcpt_times[address] = 99
        workflow = services.setup_workflow(
            workspace,
            name="auto-paused",
            parsed=ParsedFile(
                "c.csv", ["email"], "email", [{"email": r} for r in greylisted + plain]
            ),
            template=TemplateSource("Hello", None, "Hello there"),
            engine_url=smtp.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, max_attempts=1, batch_size=10, skip_mx=True),
            actor="test",
        )
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
        paused = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
        assert paused.status is RunStatus.PAUSED
        assert (paused.status_reason or "").startswith("auto-pause")
        before = services.run_summary(workspace, run_id).counts
        assert (before.deferred, before.pending, before.sent) == (15, 10, 35)
        smtp.handler.fail_rcpt_times.clear()
        # while an executor (here: this live process) still holds the paused run, no retry
        holder = {"worker_id": new_worker_id(), "heartbeat_at": utcnow()}
        with workspace.db.begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**holder))
        with pytest.raises(RunBusy, match="still held by"):
            services.retry_unsettled(workspace, run_id, include_unknown=False, actor="t")
        with workspace.db.begin() as conn:
            runs.release_run(conn, run_id, worker_id=holder["worker_id"])

        assert services.retry_unsettled(workspace, run_id, include_unknown=False, actor="t") == 15
        done = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

        assert done.status is RunStatus.COMPLETED
        counts = services.run_summary(workspace, run_id).counts
        assert (counts.sent, counts.unsettled, counts.pending) == (60, 0, 0)
        arrived = Counter({k: len(v) for k, v in smtp.handler.by_recipient().items()})
        assert arrived == Counter({address: 1 for address in greylisted + plain})
