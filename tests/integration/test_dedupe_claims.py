"""Never twice, atomically: the claim of one run of a workflow and the dedupe check against its
other runs happen under one lock (SQLite and PostgreSQL).

Two runs of one workflow: whichever claims an address first sends it; the other skips it with
a reason naming that run, whether that run is older or newer, done or still in flight. A claim
of a second run waits for the first claim's transaction instead of reading around it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries, delivery_claims
from outreach_core.adapters.store.db import SQLITE_BUSY_TIMEOUT_S
from outreach_core.adapters.store.delivery_claims import RecentSends
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Delivery, SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, workers
from outreach_core.services.sending.freeze import freeze_audience

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WINDOW = 24.0
ROWS = 6


def workflow(ws: Workspace, outbox: Path, *, name: str = "race") -> Workflow:
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            f"{name}.csv", ["email"], "email", [{"email": f"p{n}@example.com"} for n in range(ROWS)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, batch_size=ROWS, skip_mx=True),
        actor="test",
    )


def frozen_run(ws: Workspace, workflow_id: int) -> int:
    """A run of the workflow claimed and frozen by a worker of its own: SENDING, rows pending."""
    run_id = services.queue_run(ws, workflow_id, trigger="send-now", actor="test")
    assert freeze_audience(ws, workers.acquire_run(ws, run_id, worker_id=new_worker_id()))
    return run_id


def claim(
    conn: Connection, wf: Workflow, run_id: int, *, limit: int = ROWS, now: datetime = NOW
) -> list[Delivery]:
    """The batch claim of the executor, in the caller's transaction."""
    claimed = delivery_claims.claim_batch(
        conn,
        run_id,
        worker_id=f"worker-of-{run_id}",
        limit=limit,
        now=now,
        recent=RecentSends(
            workflow_id=wf.id, since=now - timedelta(hours=WINDOW), window_hours=WINDOW
        ),
        engines_for=lambda n: [wf.engine_id] * n,
    )
    return [d for d, _ in claimed or []]


def ledger(ws: Workspace, run_id: int) -> dict[str, tuple[DeliveryStatus, str | None]]:
    with ws.db.connect() as conn:
        return {d.email: (d.status, d.reason) for d in deliveries.list_deliveries(conn, run_id)}


def sending_now(run_id: int) -> str:
    return f"sent_recently: run {run_id} of this workflow is sending it now"


def sent_within(run_id: int) -> str:
    return f"sent_recently: run {run_id} of this workflow sent to it within 24 h"


def test_an_earlier_run_sends_nothing_a_later_run_has_in_flight(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the run with the smaller id, executed while a later run of its workflow holds
    four addresses in flight, skips those four naming the later run and sends the other two:
    every recipient gets one message."""
    ws = workspace
    outbox = tmp_path / "outbox"
    wf = workflow(ws, outbox)
    earlier = services.queue_run(ws, wf.id, trigger="send-now", actor="test")
    later = frozen_run(ws, wf.id)
    with ws.db.begin() as conn:  # the later run's worker is mid-batch: four rows `sending`
        held = delivery_claims.claim_pending(conn, later, worker_id="w", limit=4, now=NOW)
    run = run_to_end(ws, earlier, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    mine = ledger(ws, earlier)
    assert {mine[d.email] for d in held} == {(DeliveryStatus.SKIPPED, sending_now(later))}
    assert sum(s is DeliveryStatus.SENT for s, _ in mine.values()) == ROWS - 4
    assert len(list(message_files(outbox))) == ROWS - 4


def test_a_later_run_skips_what_an_earlier_run_holds_and_names_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the decision on every status of the other run: sent or unknown inside the window
    and sending (whatever its age) are taken, named with that run; failed, pending, and sent
    before the window are not."""
    ws = workspace
    wf = workflow(ws, tmp_path / "outbox")
    first, second = frozen_run(ws, wf.id), frozen_run(ws, wf.id)
    old = NOW - timedelta(hours=WINDOW + 1)
    with ws.db.begin() as conn:
        p0, p1, p2, p3, _p4 = (d.id for d in claim(conn, wf, first, limit=5, now=old))

        def outcome(delivery_id: int, target: DeliveryStatus, at: datetime) -> None:
            deliveries.record_outcomes(
                conn, [{"delivery_id": delivery_id, "target": target, "attempts": 1}], now=at
            )

        outcome(p0, DeliveryStatus.SENT, NOW - timedelta(hours=1))
        outcome(p1, DeliveryStatus.UNKNOWN, NOW - timedelta(hours=2))
        outcome(p2, DeliveryStatus.SENT, old)  # outside the window
        outcome(p3, DeliveryStatus.FAILED, NOW - timedelta(hours=1))
        # p4 stays `sending`, claimed more than a window ago; p5 stays pending
    with ws.db.begin() as conn:
        claimed = claim(conn, wf, second)

    assert sorted(d.email for d in claimed) == [
        "p2@example.com",
        "p3@example.com",
        "p5@example.com",
    ]
    assert ledger(ws, second) == {
        "p0@example.com": (DeliveryStatus.SKIPPED, sent_within(first)),
        "p1@example.com": (DeliveryStatus.SKIPPED, sent_within(first)),
        "p2@example.com": (DeliveryStatus.SENDING, None),
        "p3@example.com": (DeliveryStatus.SENDING, None),
        "p4@example.com": (DeliveryStatus.SKIPPED, sending_now(first)),
        "p5@example.com": (DeliveryStatus.SENDING, None),
    }


def test_a_sent_run_is_named_before_one_still_sending(workspace: Workspace, tmp_path: Path) -> None:
    """Verify an address two other runs hold (one sent it, one with dedupe off is sending it):
    the reason names the one that sent it; a run of another workflow holding every address
    changes nothing."""
    ws = workspace
    wf = workflow(ws, tmp_path / "outbox")
    stranger = workflow(ws, tmp_path / "outbox", name="other")
    first, second, third = (frozen_run(ws, wf.id) for _ in range(3))
    foreign = frozen_run(ws, stranger.id)
    with ws.db.begin() as conn:
        assert len(claim(conn, stranger, foreign)) == ROWS  # the same addresses, elsewhere
        [sent] = claim(conn, wf, second, limit=1)
        deliveries.record_outcomes(
            conn, [{"delivery_id": sent.id, "target": DeliveryStatus.SENT, "attempts": 1}], now=NOW
        )
        # a run whose window is 0 claims without looking: p0 and p1 in flight
        delivery_claims.claim_pending(conn, third, worker_id="w", limit=2, now=NOW)
    with ws.db.begin() as conn:
        claimed = claim(conn, wf, first, limit=3)

    assert [d.email for d in claimed] == ["p2@example.com"]
    assert ledger(ws, first)["p0@example.com"] == (DeliveryStatus.SKIPPED, sent_within(second))
    assert ledger(ws, first)["p1@example.com"] == (DeliveryStatus.SKIPPED, sending_now(third))


@contextmanager
def impatient(ws: Workspace) -> Iterator[Connection]:
    """A connection that gives up waiting for a lock after about 0.2 s instead of 30 s."""
    sqlite = ws.db.dialect.name == "sqlite"
    with ws.db.connect() as conn:
        conn.exec_driver_sql(
            "PRAGMA busy_timeout = 200" if sqlite else "SET lock_timeout = '200ms'"
        )
        conn.commit()  # a session setting: it outlives this transaction
        try:
            yield conn
        finally:
            conn.rollback()
            conn.exec_driver_sql(
                f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}"
                if sqlite
                else "RESET lock_timeout"
            )
            conn.commit()


def test_a_claim_waits_for_another_runs_claim_of_the_workflow(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the lock: while one run's claim transaction is open (its rows `sending`, not yet
    committed), a claim of the workflow's other run cannot read around it: it gives up on the
    lock and claims nothing; once the first commits, it skips every row the first holds.

    Without the lock (PostgreSQL) the second claim saw nothing committed and took all rows."""
    ws = workspace
    wf = workflow(ws, tmp_path / "outbox")
    first, second = frozen_run(ws, wf.id), frozen_run(ws, wf.id)
    with ws.db.begin() as conn:
        assert len(claim(conn, wf, second, limit=4)) == 4
        with impatient(ws) as other, pytest.raises(sa.exc.OperationalError), other.begin():
            claim(other, wf, first)
    assert {s for s, _ in ledger(ws, first).values()} == {DeliveryStatus.PENDING}
    with ws.db.begin() as conn:
        assert [d.email for d in claim(conn, wf, first)] == ["p4@example.com", "p5@example.com"]
    assert {r for _, r in ledger(ws, first).values()} == {sending_now(second), None}


def test_a_waiting_claim_goes_on_once_the_first_commits(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify two claims racing in two threads: the second waits for the first (with the
    normal lock timeout) and then sees its rows; each address ends claimed by one run."""
    ws = workspace
    wf = workflow(ws, tmp_path / "outbox")
    first, second = frozen_run(ws, wf.id), frozen_run(ws, wf.id)
    got: dict[int, list[Delivery]] = {}
    started = threading.Event()

    def claim_first() -> None:
        started.set()
        with ws.db.begin() as conn:
            got[first] = claim(conn, wf, first)

    racer = threading.Thread(target=claim_first)
    with ws.db.begin() as conn:
        got[second] = claim(conn, wf, second, limit=3)
        racer.start()
        started.wait(timeout=10)
        racer.join(timeout=0.5)  # give it the time to reach the lock; it must still wait
        assert racer.is_alive(), "the first run's claim did not wait for the second's"
    racer.join(timeout=30)
    assert not racer.is_alive()
    assert sorted(d.email for d in got[second] + got[first]) == sorted(
        f"p{n}@example.com" for n in range(ROWS)
    )


def test_claims_of_other_workflows_do_not_wait(
    postgres_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify on PostgreSQL the lock is per workflow: a claim of another workflow goes on
    while one workflow's claim transaction is open."""
    ws = postgres_workspace
    wf = workflow(ws, tmp_path / "outbox")
    other_wf = workflow(ws, tmp_path / "outbox", name="other")
    mine, theirs = frozen_run(ws, wf.id), frozen_run(ws, other_wf.id)
    with ws.db.begin() as conn:
        assert len(claim(conn, wf, mine)) == ROWS
        with impatient(ws) as other, other.begin():
            assert len(claim(other, other_wf, theirs)) == ROWS
