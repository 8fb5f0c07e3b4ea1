"""Cancelling a run mid-send (real SMTP sink, SQLite and PostgreSQL): no row stays `pending`.

The cancel marks the run's pending rows `cancelled` in the run's own transaction, with a reason
naming who cancelled and when; rows in flight keep the outcome their batch records, and rows
the executor claimed but never started become `cancelled` when it lets them go. Counts, the
`runs` CLI and the retry action follow.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_clock import HandClock

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audit, deliveries, delivery_claims, runs
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import Run, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import IllegalTransition
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, workers
from outreach_core.services.sending.freeze import freeze_audience

from conftest import cli_env, make_settings, run_cli, wait_for
from smtp_server import SmtpTestServer

ROWS = 300
CANCELLED_AT = datetime(2026, 12, 4, 10, 31, 12, tzinfo=UTC)
REASON = "cancelled: by ann at 2026-12-04 10:31 UTC"
#: what a row of a cancelled run may end as: anything final, never pending or sending
SETTLED = {
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.CANCELLED,
}


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    """A slow sink (50 ms per message), so a run of 300 is mid-way for seconds."""
    with SmtpTestServer() as smtp:
        smtp.handler.data_delay = 0.05
        yield smtp


def queue(ws: Workspace, engine_url: str, *, rows: int = ROWS) -> int:
    workflow = services.setup_workflow(
        ws,
        name="cancel",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"r{n}@example.org"} for n in range(rows)]
        ),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=4, batch_size=20, skip_mx=True),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def by_status(ws: Workspace, run_id: int) -> Counter[DeliveryStatus]:
    with ws.db.connect() as conn:
        return Counter(d.status for d in deliveries.list_deliveries(conn, run_id))


def test_cancel_mid_run_leaves_no_pending_row_and_names_who_cancelled(
    workspace: Workspace, db_url: str, sink: SmtpTestServer, tmp_path: Path
) -> None:
    """Verify a cancel through the service while 300 recipients are being sent: the executor
    stops, the ledger holds no pending (or sending) row, every unsent row is `cancelled` with
    the actor and time, counts and `runs` show them, each sent message went out once, and a
    retry cannot bring the cancelled rows back."""
    ws = workspace
    run_id = queue(ws, sink.url)
    ended: list[Run] = []
    executor = threading.Thread(
        target=lambda: ended.append(
            run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
        )
    )
    executor.start()
    wait_for(lambda: len(sink.handler.received) >= 40, what="40 messages at the sink")

    run = services.cancel_run(ws, run_id, actor="ann", clock=HandClock(CANCELLED_AT))
    executor.join(timeout=30)

    assert not executor.is_alive(), "the executor did not stop after the cancel"
    assert run.status is RunStatus.CANCELLED and run.status_reason == REASON
    assert ended and ended[0].status is RunStatus.CANCELLED
    statuses = by_status(ws, run_id)
    assert set(statuses) <= SETTLED, statuses
    assert statuses[DeliveryStatus.CANCELLED] > 100  # cancelled well before the end
    assert sum(statuses.values()) == ROWS
    with ws.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
    cancelled = [d for d in ledger if d.status is DeliveryStatus.CANCELLED]
    assert {d.reason for d in cancelled} == {REASON}
    assert all(d.sent_at is None and d.message_id is None for d in cancelled)
    # the sink got exactly the sent rows, once each, and nothing more after the executor ended
    received = sink.handler.by_recipient()
    sent = {d.email_normalized for d in ledger if d.status is DeliveryStatus.SENT}
    assert set(received) == sent and all(len(v) == 1 for v in received.values())

    counts = services.run_summary(ws, run_id).counts
    assert counts.cancelled == statuses[DeliveryStatus.CANCELLED]
    assert counts.pending == counts.sending == 0
    assert f"{counts.cancelled} cancelled" in str(counts)
    with ws.db.connect() as conn:
        entry = [e for e in audit.latest(conn) if e["action"] == "run.cancelled"]
    assert entry and entry[0]["actor"] == "ann"

    with pytest.raises(IllegalTransition, match="cannot be retried"):
        services.retry_unsettled(ws, run_id, include_unknown=True, actor="ann")
    assert by_status(ws, run_id) == statuses

    listed = run_cli(tmp_path, "runs", env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url))
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[-2:] == ["cancelled", "workflow"]
    assert row.split()[1] == "CANCELLED" and row.split()[-2] == str(counts.cancelled)


def test_rows_released_unstarted_after_a_cancel_become_cancelled(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the race the executor's batch is in: a batch claimed, the run cancelled meanwhile,
    then the batch recorded: its finished rows keep their outcome, the rows it never started
    become `cancelled` with the cancel's reason (not `pending`), the rest were cancelled by the
    cancel itself. The same release before any cancel still puts rows back to pending."""
    ws = workspace
    run_id = queue(ws, f"outbox://{tmp_path / 'outbox'}", rows=10)
    worker = new_worker_id()
    # the executor's own first stages, without sending: a SENDING run with pending rows
    freeze_audience(ws, workers.acquire_run(ws, run_id, worker_id=worker))
    with ws.db.begin() as conn:
        batch = delivery_claims.claim_pending(
            conn, run_id, worker_id=worker, limit=4, now=CANCELLED_AT
        )
        # a release before any cancel: back to pending, as a pause or stop wants
        delivery_claims.release_unstarted(conn, [batch[3].id], now=CANCELLED_AT)
    assert by_status(ws, run_id) == {DeliveryStatus.SENDING: 3, DeliveryStatus.PENDING: 7}
    with ws.db.begin() as conn:
        batch = (
            delivery_claims.claim_pending(conn, run_id, worker_id=worker, limit=1, now=CANCELLED_AT)
            + batch[:3]
        )

    services.cancel_run(ws, run_id, actor="ann", clock=HandClock(CANCELLED_AT))
    assert by_status(ws, run_id) == {DeliveryStatus.SENDING: 4, DeliveryStatus.CANCELLED: 6}

    sent, *unstarted = sorted(d.id for d in batch)
    with ws.db.begin() as conn:
        delivery_claims.record_batch(
            conn,
            [{"delivery_id": sent, "target": DeliveryStatus.SENT, "attempts": 1}],
            unstarted,
            now=CANCELLED_AT,
        )
    assert by_status(ws, run_id) == {DeliveryStatus.SENT: 1, DeliveryStatus.CANCELLED: 9}
    with ws.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
    assert {d.reason for d in ledger if d.status is DeliveryStatus.CANCELLED} == {REASON}


def test_a_cancel_racing_the_batch_record_leaves_no_pending_row_on_postgres(
    postgres_url: str, tmp_path: Path
) -> None:
    """Verify the race on PostgreSQL, where both commit concurrently: a cancel holds the run
    (its rows marked, not yet committed) while the executor records its batch. The record
    waits for the cancel, then makes its unstarted rows `cancelled`; without the wait they
    would go back to `pending` after the cancel had marked the pending ones."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    try:
        run_id = queue(ws, f"outbox://{tmp_path / 'outbox'}", rows=10)
        worker = new_worker_id()
        freeze_audience(ws, workers.acquire_run(ws, run_id, worker_id=worker))
        with ws.db.begin() as conn:
            batch = delivery_claims.claim_pending(
                conn, run_id, worker_id=worker, limit=4, now=CANCELLED_AT
            )

        def record() -> None:
            with ws.db.begin() as conn:
                delivery_claims.record_batch(conn, [], [d.id for d in batch], now=CANCELLED_AT)

        recorder = threading.Thread(target=record)
        with ws.db.begin() as cancel:
            run = runs.get_run(cancel, run_id)
            runs.set_run_status(
                cancel, run_id, expected=run.status, target=RunStatus.CANCELLED,
                now=CANCELLED_AT, reason=REASON,
            )  # fmt: skip
            assert deliveries.cancel_pending(cancel, run_id, reason=REASON, now=CANCELLED_AT) == 6
            recorder.start()
            recorder.join(timeout=1)
            assert recorder.is_alive(), "the record did not wait for the cancel's transaction"
        recorder.join(timeout=30)
        assert by_status(ws, run_id) == {DeliveryStatus.CANCELLED: 10}
    finally:
        ws.close()
