"""The take-over rule, on SQLite and PostgreSQL: when an executor takes over a run whose holder is
gone, which in-flight (claimed) deliveries become `unknown` (those handed to an engine), which go
back to pending (claimed, never handed) and which stay with their claimant.

The state is built through the store functions (run claim, delivery claims, daemon heartbeats),
so each kind of claimant is present at once and the rule is checked without timing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_store import delivery_row, queue_with_deliveries, seed_workflow

from outreach_core.adapters.store import daemons, deliveries, delivery_claims, in_flight, runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.errors import IllegalTransition, RunBusy
from outreach_core.services import sending

#: far enough back that both the run's and a daemon's heartbeat count as stale
LONG_AGO = timedelta(hours=1)


def sending_run(ws: Workspace, tmp_path: Path, *, holder: str, heartbeat_age: timedelta) -> int:
    """A SENDING run of 12 pending deliveries held by `holder`, last heartbeat `heartbeat_age` ago."""
    run_id = queue_with_deliveries(ws, seed_workflow(ws, tmp_path), 12)
    then = utcnow() - heartbeat_age
    with ws.db.begin() as conn:
        runs.claim_next_run(conn, worker_id=holder, now=then, run_id=run_id)
        runs.set_run_status(
            conn,
            run_id,
            expected=RunStatus.INITIALIZING,
            target=RunStatus.SENDING,
            now=then,
            worker_id=holder,
        )
    return run_id


def claim(ws: Workspace, run_id: int, worker_id: str, count: int) -> set[int]:
    """Move `count` pending deliveries of the run to `sending` for `worker_id`; their ids."""
    with ws.db.begin() as conn:
        batch = delivery_claims.claim_pending(
            conn, run_id, worker_id=worker_id, limit=count, now=utcnow()
        )
    assert len(batch) == count
    return {d.id for d in batch}


def hand(ws: Workspace, worker_id: str, delivery_ids: set[int]) -> set[int]:
    """Mark these claimed deliveries of `worker_id` handed to their engine; their ids."""
    with ws.db.begin() as conn:
        for delivery_id in delivery_ids:
            assert in_flight.mark_handed(
                conn, delivery_id, worker_id=worker_id, message_id=f"<{delivery_id}@x>",
                now=utcnow(),
            )  # fmt: skip
    return delivery_ids


def test_take_over_marks_dead_handed_claims_unknown_and_leaves_a_live_assistant_its_batch(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify take_over turns into `unknown` the claims handed to an engine of the dead holder
    (even one whose daemon row still looks alive), of a daemon with a stale heartbeat, of a
    worker that is no daemon and of a row with no claimant, and puts their claims never handed
    back to pending; a live daemon assisting the run keeps its whole batch `sending` and then
    records its own outcomes; pending deliveries stay pending for the new holder."""
    run_id = sending_run(workspace, tmp_path, holder="holder", heartbeat_age=LONG_AGO)
    now = utcnow()
    with workspace.db.begin() as conn:
        # the holder's daemon row is fresh, but its heartbeat on the run went stale: the run's
        # holder is never an assistant, whatever its daemon row says
        daemons.register(conn, "holder", now=now)
        daemons.register(conn, "live-assistant", now=now)
        daemons.register(conn, "stale-assistant", now=now - LONG_AGO)
    by_holder = claim(workspace, run_id, "holder", 3)
    by_live = claim(workspace, run_id, "live-assistant", 3)
    by_stale = claim(workspace, run_id, "stale-assistant", 2)
    by_foreground = claim(workspace, run_id, "foreground-send", 1)
    handed = (
        hand(workspace, "holder", set(sorted(by_holder)[:2]))
        | hand(workspace, "stale-assistant", set(sorted(by_stale)[:1]))
        | hand(workspace, "foreground-send", by_foreground)
    )
    hand(workspace, "live-assistant", set(sorted(by_live)[:1]))
    with workspace.db.begin() as conn:
        # claimed rows that name no claimant, one of them handed over
        deliveries.insert_deliveries(
            conn,
            [
                delivery_row(run_id, 100, status=DeliveryStatus.SENDING, handed_at=utcnow()),
                delivery_row(run_id, 101, status=DeliveryStatus.SENDING, handed_at=None),
            ],
        )

    taken = sending.take_over(workspace, run_id, worker_id="new-holder")

    assert (taken.status, taken.worker_id) == (RunStatus.SENDING, "new-holder")
    with workspace.db.connect() as conn:
        ledger = {d.id: d for d in deliveries.list_deliveries(conn, run_id)}
    unclaimed = {d.row_number: i for i, d in ledger.items() if d.row_number in (100, 101)}
    abandoned = handed | {unclaimed[100]}
    never_handed = (by_holder | by_stale) - handed | {unclaimed[101]}
    assert {i for i, d in ledger.items() if d.status is DeliveryStatus.UNKNOWN} == abandoned
    for delivery_id in abandoned:
        assert "not resent" in (ledger[delivery_id].reason or "")
    assert {i for i, d in ledger.items() if d.status is DeliveryStatus.SENDING} == by_live
    for delivery_id in never_handed:  # back to pending, free for the new holder to claim
        delivery = ledger[delivery_id]
        assert delivery.status is DeliveryStatus.PENDING, delivery_id
        assert (delivery.engine_id, delivery.sent_at, delivery.handed_at) == (None, None, None)
    pending = {i for i, d in ledger.items() if d.status is DeliveryStatus.PENDING}
    assert len(pending) == 14 - len(by_live | abandoned)
    with workspace.db.connect() as conn:
        claimants = delivery_claims.in_flight_claimants(conn, run_id, besides="new-holder")
    assert claimants == {"live-assistant": 3}

    # the assisting daemon finishes its batch: its outcomes are recorded as it reports them
    with workspace.db.begin() as conn:
        for delivery_id in by_live:
            deliveries.record_outcome(
                conn, delivery_id, target=DeliveryStatus.SENT, now=utcnow(), attempts=1
            )
    # an abandoned claim cannot be recorded afterwards: it stays unknown, never resent
    with (
        workspace.db.begin() as conn,
        pytest.raises(IllegalTransition, match="no longer sending"),
    ):
        deliveries.record_outcome(
            conn, min(by_holder), target=DeliveryStatus.SENT, now=utcnow(), attempts=1
        )
    with workspace.db.connect() as conn:
        counts = deliveries.counts(conn, run_id)
    assert (counts.sent, counts.unknown, counts.sending) == (len(by_live), len(abandoned), 0)


def test_take_over_refuses_while_the_holder_is_alive_and_changes_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a holder with a fresh heartbeat keeps its run: take_over raises RunBusy and every
    claim, the holder's and an assistant's, stays `sending`."""
    run_id = sending_run(workspace, tmp_path, holder="holder", heartbeat_age=timedelta(0))
    claimed = claim(workspace, run_id, "holder", 2) | claim(workspace, run_id, "foreground-send", 2)

    with pytest.raises(RunBusy, match="is being sent by holder"):
        sending.take_over(workspace, run_id, worker_id="new-holder")

    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
        ledger = deliveries.list_deliveries(conn, run_id)
    assert run.worker_id == "holder"
    assert {d.id for d in ledger if d.status is DeliveryStatus.SENDING} == claimed
