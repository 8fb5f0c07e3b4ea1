"""The hand-off transaction's writes (`hand_off_writes.hand_off_writer`): on PostgreSQL one
statement over arrays, in autocommit on an asynchronous connection; on SQLite two
`executemany` in a transaction, in a thread. Both must leave the same ledger, and on
PostgreSQL the one statement must write all or nothing."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from test_store import queue_with_deliveries, seed_workflow

from outreach_core.adapters.store import delivery_claims, hand_off_writes, tables
from outreach_core.adapters.store.deliveries import MAX_REASON_CHARS
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.message import Outgoing
from outreach_core.domain.states import DeliveryStatus
from outreach_core.services.sending.handoff import HandOffs

D = tables.deliveries


def _rows(ws: Workspace, ids: list[int]) -> dict[int, Any]:
    with ws.db.connect() as conn:
        return {row.id: row for row in conn.execute(sa.select(D).where(D.c.id.in_(ids)))}


def test_one_hand_off_records_each_outcome_field_and_marks_only_the_held_rows(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify on both backends, through the writer each uses: a sent, a failed (reason cut),
    a deferred (keeping its first deferral) and an unknown outcome (keeping its stored
    Message-ID) land field by field; an outcome for a row no longer `sending` changes nothing;
    of two marks, the one for a row a take-over gave to another worker is refused and left
    unmarked; a write of nothing refuses nothing."""
    ws = workspace
    run_id = queue_with_deliveries(ws, seed_workflow(ws, tmp_path), 7)
    now = utcnow().replace(microsecond=0)
    ended_at, first_deferral = now - timedelta(seconds=3), now - timedelta(hours=2)
    with ws.db.begin() as conn:
        sent, failed, deferred, unknown, gone, mine, theirs = (
            d.id
            for d in delivery_claims.claim_pending(conn, run_id, worker_id="me", limit=7, now=now)
        )
        conn.execute(
            D.update()
            .where(D.c.id == deferred)
            .values(deferred_since=first_deferral, attempts=3, reason="earlier")
        )
        conn.execute(D.update().where(D.c.id == unknown).values(message_id="<kept@x>"))
        conn.execute(D.update().where(D.c.id == gone).values(status=DeliveryStatus.PENDING))
        conn.execute(D.update().where(D.c.id == theirs).values(claimed_by="other"))
    outcomes = [
        {"delivery_id": sent, "target": DeliveryStatus.SENT, "attempts": 1,
         "message_id": "<s@x>", "provider_message_id": "prov-1", "latency_ms": 12,
         "ended_at": ended_at},
        {"delivery_id": failed, "target": DeliveryStatus.FAILED, "attempts": 2,
         "reason": "x" * (MAX_REASON_CHARS + 50), "error_kind": "permanent", "reply_code": 550},
        {"delivery_id": deferred, "target": DeliveryStatus.DEFERRED, "attempts": 1,
         "error_kind": "transient", "deferred_since": now,
         "next_attempt_at": now + timedelta(minutes=5)},
        {"delivery_id": unknown, "target": DeliveryStatus.UNKNOWN, "attempts": 1,
         "reason": "timed out", "error_kind": "ambiguous"},
        {"delivery_id": gone, "target": DeliveryStatus.SENT, "attempts": 1},
    ]  # fmt: skip
    marks = [(mine, "<mine@x>"), (theirs, "<theirs@x>")]
    refused, nothing_refused = asyncio.run(_write_twice(ws, outcomes, marks, now=now))
    assert refused == {theirs}
    assert nothing_refused == set()
    rows = _rows(ws, [sent, failed, deferred, unknown, gone, mine, theirs])
    got = rows[sent]
    assert (got.status, got.attempts, got.message_id) == (DeliveryStatus.SENT, 1, "<s@x>")
    assert (got.provider_message_id, got.latency_ms) == ("prov-1", 12)
    assert (got.sent_at, got.updated_at) == (ended_at, ended_at)
    got = rows[failed]
    assert (got.status, got.attempts, got.sent_at) == (DeliveryStatus.FAILED, 2, None)
    assert (got.error_kind, got.reply_code) == ("permanent", 550)
    assert len(got.reason) == MAX_REASON_CHARS and got.reason.endswith("…")
    got = rows[deferred]
    assert (got.status, got.attempts, got.reason) == (DeliveryStatus.DEFERRED, 4, "earlier")
    assert (got.deferred_since, got.next_attempt_at) == (first_deferral, now + timedelta(minutes=5))
    got = rows[unknown]
    assert (got.status, got.message_id, got.reason) == (
        DeliveryStatus.UNKNOWN,
        "<kept@x>",
        "timed out",
    )
    assert (got.sent_at, got.updated_at) == (now, now)
    assert (rows[gone].status, rows[gone].sent_at) == (DeliveryStatus.PENDING, None)
    assert (rows[mine].handed_at, rows[mine].message_id) == (now, "<mine@x>")
    assert (rows[theirs].handed_at, rows[theirs].message_id) == (None, None)


async def _write_twice(
    ws: Workspace, outcomes: list[dict[str, Any]], marks: list[tuple[int, str]], *, now: datetime
) -> tuple[set[int], set[int]]:
    """Through the writer the product uses for the backend: these, then nothing at all."""
    writer = hand_off_writes.hand_off_writer(ws.db, "me")
    try:
        return (
            await writer.write(outcomes, marks, now=now),
            await writer.write([], [], now=now),
        )
    finally:
        await writer.close()


def test_a_hand_off_that_fails_on_postgresql_writes_nothing_and_the_next_one_writes_all(
    postgres_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify through HandOffs (whose PostgreSQL connection runs without a transaction): an
    outcome and a mark the server refuses (a Message-ID longer than its column) raise and
    write neither the outcome nor the mark; the next hand-off writes that outcome and its own
    mark."""
    ws = postgres_workspace
    run_id = queue_with_deliveries(ws, seed_workflow(ws, tmp_path), 3)
    with ws.db.begin() as conn:
        done, refused, next_one = delivery_claims.claim_pending(
            conn, run_id, worker_id="me", limit=3, now=utcnow()
        )
    handoffs = HandOffs(ws, "me", utcnow)

    async def hand_over() -> None:
        handoffs.ended({"delivery_id": done.id, "target": DeliveryStatus.SENT, "attempts": 1})
        with pytest.raises(DBAPIError, match="too long"):
            await handoffs.hand_off(_outgoing(refused.id, "<" + "x" * 400 + ">"))
        rows = _rows(ws, [done.id, refused.id])
        assert rows[done.id].status == DeliveryStatus.SENDING
        assert rows[refused.id].handed_at is None
        await handoffs.hand_off(_outgoing(next_one.id, "<next@x>"))
        await handoffs.close()

    asyncio.run(hand_over())
    rows = _rows(ws, [done.id, refused.id, next_one.id])
    assert rows[done.id].status == DeliveryStatus.SENT
    assert rows[refused.id].handed_at is None
    assert (rows[next_one.id].message_id, rows[next_one.id].handed_at is not None) == (
        "<next@x>",
        True,
    )


def test_a_sender_cancelled_while_it_waits_for_its_hand_off_leaves_its_row_unmarked(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify on both backends: of two hand-offs waiting for the same write, the one whose
    sender is cancelled first (a run stopping) is not marked handed, and the other is."""
    ws = workspace
    run_id = queue_with_deliveries(ws, seed_workflow(ws, tmp_path), 2)
    with ws.db.begin() as conn:
        kept, dropped = delivery_claims.claim_pending(
            conn, run_id, worker_id="me", limit=2, now=utcnow()
        )
    handoffs = HandOffs(ws, "me", utcnow)

    async def hand_over() -> None:
        gone = asyncio.create_task(handoffs.hand_off(_outgoing(dropped.id, "<dropped@x>")))
        going = asyncio.create_task(handoffs.hand_off(_outgoing(kept.id, "<kept@x>")))
        await asyncio.sleep(0)  # both wait for the write, which starts on the next turn
        gone.cancel()
        await going
        with pytest.raises(asyncio.CancelledError):
            await gone
        await handoffs.close()

    asyncio.run(hand_over())
    rows = _rows(ws, [kept.id, dropped.id])
    assert (rows[kept.id].message_id, rows[kept.id].handed_at is not None) == ("<kept@x>", True)
    assert (rows[dropped.id].message_id, rows[dropped.id].handed_at) == (None, None)


def test_a_postgresql_server_out_of_reach_is_an_operational_error_as_for_any_statement(
    tmp_path: Path,
) -> None:
    """Verify the hand-off writer of PostgreSQL raises a server it cannot reach as SQLAlchemy's
    OperationalError (which the executor treats as the database being down, not the run's
    data), without the statement's values in it."""
    with socket.socket() as probe:  # a loopback port with no server behind it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    writer = hand_off_writes.hand_off_writer(engine, "me")
    assert isinstance(writer, hand_off_writes.PostgresHandOffWriter)
    outcome = {"delivery_id": 1, "target": DeliveryStatus.SENT, "attempts": 1}

    async def write() -> None:
        await writer.write([outcome], [(2, "<secret-ish@x>")], now=utcnow())

    with pytest.raises(sa.exc.OperationalError) as raised:
        asyncio.run(write())
    assert "secret-ish" not in str(raised.value)
    assert raised.value.connection_invalidated
    engine.dispose()


def _outgoing(delivery_id: int, message_id: str) -> Outgoing:
    return Outgoing(
        delivery_id=delivery_id,
        envelope_from="team@example.com",
        recipient="someone@example.org",
        data=b"Subject: Hi\r\n\r\nHi\r\n",
        message_id=message_id,
    )
