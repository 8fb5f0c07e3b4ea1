"""The hand-off transactions keep one connection while they follow each other closely; on
PostgreSQL that connection may die between two of them (a server restart, a backend ended by
an administrator), and the next hand-off then goes through on a new one instead of failing
its send."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from outreach_core.adapters.store import deliveries, delivery_claims
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.message import Outgoing
from outreach_core.domain.models import Delivery
from outreach_core.domain.states import DeliveryStatus
from outreach_core.services.sending import new_worker_id
from outreach_core.services.sending.handoff import HandOffs
from tests.frozen_runs import frozen_outbox_run


def _claimed(ws: Workspace, tmp_path: Path, worker: str, rows: int) -> list[Delivery]:
    """A frozen run of `rows` recipients, all claimed by `worker`."""
    emails = [f"h{n}@example.org" for n in range(rows)]
    run_id = frozen_outbox_run(ws, tmp_path, name="handoff", emails=emails, worker_id=worker)
    with ws.db.begin() as conn:
        return delivery_claims.claim_pending(
            conn, run_id, worker_id=worker, limit=rows, now=utcnow()
        )


def _outgoing(delivery: Delivery) -> Outgoing:
    return Outgoing(
        delivery_id=delivery.id,
        envelope_from="team@example.com",
        recipient=delivery.email,
        data=b"Subject: Hello\r\n\r\nHello there\r\n",
        message_id=f"<{delivery.id}@outreach.test>",
    )


def _handed(ws: Workspace, ids: list[int]) -> dict[int, str | None]:
    with ws.db.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.deliveries.c.id, deliveries.deliveries.c.message_id).where(
                deliveries.deliveries.c.id.in_(ids),
                deliveries.deliveries.c.handed_at.is_not(None),
            )
        )
        return {row.id: row.message_id for row in rows}


def _end_backend_of(handoffs: HandOffs, ws: Workspace) -> bool:
    """pg_terminate_backend for the server process behind the hand-offs' kept connection."""
    kept = handoffs._store._conn  # type: ignore[attr-defined]  # under test; read, not used
    assert kept is not None, "no connection kept after a hand-off"
    pid = kept.info.backend_pid
    with ws.db.connect() as conn:
        return conn.execute(sa.select(sa.func.pg_terminate_backend(pid))).scalar_one()


def test_a_hand_off_after_the_kept_connection_died_goes_through_on_a_new_one(
    postgres_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify: hand off one message, end the server backend of the kept connection, hand off
    the next two (with the first one's outcome to record): both marked handed, the outcome
    written, nothing raised."""
    ws = postgres_workspace
    worker = new_worker_id()
    first, second, third = _claimed(ws, tmp_path, worker, rows=3)
    handoffs = HandOffs(ws, worker, utcnow)

    async def hand_over() -> None:
        await handoffs.hand_off(_outgoing(first))
        handoffs.ended({"delivery_id": first.id, "target": DeliveryStatus.SENT, "attempts": 1})
        assert _end_backend_of(handoffs, ws)
        try:
            await asyncio.gather(
                handoffs.hand_off(_outgoing(second)), handoffs.hand_off(_outgoing(third))
            )
        finally:
            await handoffs.close()

    asyncio.run(hand_over())
    ids = [first.id, second.id, third.id]
    assert _handed(ws, ids) == {d: f"<{d}@outreach.test>" for d in ids}
    with ws.db.connect() as conn:
        status = conn.execute(
            sa.select(deliveries.deliveries.c.status).where(deliveries.deliveries.c.id == first.id)
        ).scalar_one()
    assert status == DeliveryStatus.SENT
