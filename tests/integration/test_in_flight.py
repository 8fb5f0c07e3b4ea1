"""Deliveries in flight, on SQLite and PostgreSQL: the hand-off mark, and what a gone executor's
claims become: `unknown` only when handed to an engine, back to pending otherwise.

The state is built through the store functions, so each case is checked without timing.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from test_store import queue_with_deliveries, seed_workflow

from outreach_core import services
from outreach_core.adapters.store import deliveries, delivery_claims, in_flight, runs, tables
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Delivery
from outreach_core.domain.states import DeliveryStatus, RunStatus


def ledger(ws: Workspace, run_id: int) -> dict[int, Delivery]:
    with ws.db.connect() as conn:
        return {d.id: d for d in deliveries.list_deliveries(conn, run_id)}


def claimed_by(ws: Workspace, delivery_id: int) -> str | None:
    with ws.db.connect() as conn:
        return conn.execute(
            sa.select(tables.deliveries.c.claimed_by).where(tables.deliveries.c.id == delivery_id)
        ).scalar_one()


def test_settle_makes_unknown_only_the_handed_deliveries_and_returns_the_rest_to_pending(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify settling a run's in-flight rows: the handed one becomes unknown with its Message-ID
    and a reason, the claimed ones never handed go back to pending without claim, engine or
    send time; sent rows, pending rows and another run's claims stay as they were."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = queue_with_deliveries(workspace, workflow, 6)
    other = queue_with_deliveries(workspace, workflow, 2)
    now = utcnow()
    with workspace.db.begin() as conn:
        claimed = delivery_claims.claim_pending(conn, run_id, worker_id="dead", limit=4, now=now)
        delivery_claims.assign_engines(conn, {d.id: 1 for d in claimed}, now=now)
        [elsewhere] = delivery_claims.claim_pending(conn, other, worker_id="w", limit=1, now=now)
        for delivery in claimed[:2]:
            assert in_flight.mark_handed(
                conn, delivery.id, worker_id="dead", message_id=f"<{delivery.id}@x>", now=now
            )
        assert in_flight.mark_handed(
            conn, elsewhere.id, worker_id="w", message_id="<other@x>", now=now
        )
        deliveries.record_outcome(
            conn, claimed[0].id, target=DeliveryStatus.SENT, now=now, attempts=1,
            message_id=f"<{claimed[0].id}@x>",
        )  # fmt: skip
        unknown = in_flight.settle(conn, run_id, now=now)

    assert unknown == 1
    stored = ledger(workspace, run_id)
    handed = stored[claimed[1].id]
    assert handed.status is DeliveryStatus.UNKNOWN
    assert handed.message_id == f"<{claimed[1].id}@x>"  # a resend carries it again
    assert "not resent" in (handed.reason or "")
    assert (handed.engine_id, handed.handed_at) == (1, now)  # it counts against the quota
    assert stored[claimed[0].id].status is DeliveryStatus.SENT
    for delivery in claimed[2:]:
        back = stored[delivery.id]
        assert back.status is DeliveryStatus.PENDING
        assert (back.engine_id, back.sent_at, back.handed_at, back.message_id) == (None,) * 4
        assert claimed_by(workspace, delivery.id) is None
    with workspace.db.connect() as conn:
        counts = deliveries.counts(conn, run_id)
        assert deliveries.counts(conn, other).sending == 1
    assert (counts.sent, counts.unknown, counts.pending, counts.sending) == (1, 1, 4, 0)


def test_settle_claimed_touches_only_that_workers_rows(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify settling one gone worker leaves another worker's claims, handed or not, alone."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 4)
    now = utcnow()
    with workspace.db.begin() as conn:
        dead = delivery_claims.claim_pending(conn, run_id, worker_id="dead", limit=2, now=now)
        alive = delivery_claims.claim_pending(conn, run_id, worker_id="alive", limit=2, now=now)
        for worker, batch in (("dead", dead), ("alive", alive)):
            assert in_flight.mark_handed(
                conn, batch[0].id, worker_id=worker, message_id="<m@x>", now=now
            )
        assert delivery_claims.settle_claimed(conn, run_id, claimed_by="dead", now=now) == 1
    stored = ledger(workspace, run_id)
    assert [stored[d.id].status for d in dead] == [DeliveryStatus.UNKNOWN, DeliveryStatus.PENDING]
    assert [stored[d.id].status for d in alive] == [DeliveryStatus.SENDING] * 2


def test_settle_in_a_cancelled_run_cancels_the_claims_never_handed(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a claim never handed over in a run cancelled meanwhile becomes `cancelled` with the
    run's reason, not pending; the handed one still becomes unknown."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 3)
    now = utcnow()
    with workspace.db.begin() as conn:
        claimed = delivery_claims.claim_pending(conn, run_id, worker_id="dead", limit=2, now=now)
        assert in_flight.mark_handed(
            conn, claimed[0].id, worker_id="dead", message_id="<m@x>", now=now
        )
    services.cancel_run(workspace, run_id, actor="ann")
    with workspace.db.begin() as conn:
        assert in_flight.settle(conn, run_id, now=now) == 1
    stored = ledger(workspace, run_id)
    assert stored[claimed[0].id].status is DeliveryStatus.UNKNOWN
    assert stored[claimed[1].id].status is DeliveryStatus.CANCELLED
    assert "cancelled: by ann" in (stored[claimed[1].id].reason or "")
    assert {d.status for d in stored.values()} == {DeliveryStatus.UNKNOWN, DeliveryStatus.CANCELLED}
    with workspace.db.connect() as conn:
        assert runs.get_run(conn, run_id).status is RunStatus.CANCELLED


def test_mark_handed_only_while_the_worker_holds_the_row(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the hand-off mark refuses a row that is another worker's, no longer `sending`, or
    was never claimed, and changes nothing then."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 3)
    now = utcnow()
    with workspace.db.begin() as conn:
        mine, theirs = delivery_claims.claim_pending(conn, run_id, worker_id="me", limit=2, now=now)
        [pending] = [
            d.id
            for d in deliveries.list_deliveries(conn, run_id)
            if d.status is DeliveryStatus.PENDING
        ]
        # a take-over gave `theirs` to another worker meanwhile
        conn.execute(
            tables.deliveries.update()
            .where(tables.deliveries.c.id == theirs.id)
            .values(claimed_by="other")
        )
        assert not in_flight.mark_handed(conn, theirs.id, worker_id="me", message_id="<a>", now=now)
        assert not in_flight.mark_handed(conn, pending, worker_id="me", message_id="<b>", now=now)
        assert in_flight.mark_handed(conn, mine.id, worker_id="me", message_id="<c>", now=now)
        deliveries.record_outcome(conn, mine.id, target=DeliveryStatus.SENT, now=now, attempts=1)
        assert not in_flight.mark_handed(conn, mine.id, worker_id="me", message_id="<d>", now=now)
    stored = ledger(workspace, run_id)
    assert (stored[theirs.id].handed_at, stored[theirs.id].message_id) == (None, None)
    assert (stored[pending].handed_at, stored[pending].message_id) == (None, None)
    # an outcome without a Message-ID keeps the one stored at the hand-off
    assert (stored[mine.id].handed_at, stored[mine.id].message_id) == (now, "<c>")


def test_a_retried_row_is_claimed_unhanded_and_keeps_its_message_id(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify an `unknown` row put back to pending (retry) is claimed again without its old
    hand-off mark, so a crash before its new hand-off returns it to pending, and keeps the
    Message-ID its first message carried."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 1)
    now = utcnow()
    with workspace.db.begin() as conn:
        [row] = delivery_claims.claim_pending(conn, run_id, worker_id="a", limit=1, now=now)
        assert in_flight.mark_handed(conn, row.id, worker_id="a", message_id="<1@x>", now=now)
        assert in_flight.settle(conn, run_id, now=now) == 1
        deliveries.requeue(
            conn, run_id, statuses=[DeliveryStatus.UNKNOWN], note="retry; before: ", now=now
        )
        [again] = delivery_claims.claim_pending(conn, run_id, worker_id="b", limit=1, now=now)
        assert (again.handed_at, again.message_id) == (None, "<1@x>")
        assert in_flight.settle(conn, run_id, now=now) == 0  # b died before handing it over
    assert ledger(workspace, run_id)[row.id].status is DeliveryStatus.PENDING


def test_release_unstarted_with_a_worker_leaves_another_workers_claim(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a batch's release of its unstarted rows skips a row a take-over gave to another
    worker (which is sending it), and clears the hand-off mark of the rows it releases."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 2)
    now = utcnow()
    with workspace.db.begin() as conn:
        mine, theirs = delivery_claims.claim_pending(conn, run_id, worker_id="me", limit=2, now=now)
        assert in_flight.mark_handed(conn, mine.id, worker_id="me", message_id="<m>", now=now)
        conn.execute(
            tables.deliveries.update()
            .where(tables.deliveries.c.id == theirs.id)
            .values(claimed_by="other")
        )
        released = delivery_claims.release_unstarted(
            conn, [mine.id, theirs.id], now=now, worker_id="me"
        )
    assert released == 1
    stored = ledger(workspace, run_id)
    assert (stored[mine.id].status, stored[mine.id].handed_at) == (DeliveryStatus.PENDING, None)
    assert stored[theirs.id].status is DeliveryStatus.SENDING
    assert claimed_by(workspace, theirs.id) == "other"


def test_mark_handed_many_names_the_rows_it_refused(workspace: Workspace, tmp_path: Path) -> None:
    """Verify several hand-offs in one statement mark the rows the worker holds and name the one
    a take-over gave to another worker, which stays unmarked."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 3)
    now = utcnow()
    with workspace.db.begin() as conn:
        rows = delivery_claims.claim_pending(conn, run_id, worker_id="me", limit=3, now=now)
        conn.execute(
            tables.deliveries.update()
            .where(tables.deliveries.c.id == rows[1].id)
            .values(claimed_by="other")
        )
        marks = [(d.id, f"<{d.id}@x>") for d in rows]
        refused = in_flight.mark_handed_many(conn, marks, worker_id="me", now=now)
        assert in_flight.mark_handed_many(conn, [], worker_id="me", now=now) == set()
    assert refused == {rows[1].id}
    stored = ledger(workspace, run_id)
    assert [stored[d.id].message_id for d in rows] == [
        f"<{rows[0].id}@x>",
        None,
        f"<{rows[2].id}@x>",
    ]
    assert stored[rows[1].id].handed_at is None
