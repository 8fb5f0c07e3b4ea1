"""Claiming deliveries for sending, and what each worker holds in flight.

The at-most-once hand-off between the ledger and the engines: a delivery is claimed
(`sending`, with its worker and engine) in the database before its message goes out, marked
handed right before the engine call (`in_flight.mark_handed`), and its outcome is recorded
after; of what a gone worker held, the handed deliveries become `unknown`, never resent, and
the others go back to `pending` (`in_flight.settle`). The executor's batch loop enters here a
few times per batch: `lock_quota_usage`, `claim_batch`, `record_batch`.

Never twice across runs: two runs of one workflow (a double click on send-now, a trigger while
the scheduled run sends) may be sent at once by several processes. Their claims take one lock
per workflow (`lock_workflow_claims`) before they read what the other runs hold, so the check
and the claim are one step: whichever claims an address first sends it, the other skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import dns_waits, engines, in_flight, suppressions
from outreach_core.adapters.store.deliveries import (
    engine_usage,
    record_outcomes,
    status_is,
    to_delivery,
)
from outreach_core.adapters.store.tables import deliveries, runs, workflows
from outreach_core.domain.dedupe import Taken, sent_recently_reason, taken_by
from outreach_core.domain.models import Delivery
from outreach_core.domain.states import DeliveryStatus


@dataclass(frozen=True)
class RecentSends:
    """A run's dedupe window: rows another run of its workflow sent to since `since` (the
    window is `window_hours` long), or is sending now, are skipped naming that run."""

    workflow_id: int
    since: datetime
    window_hours: float


def lock_quota_usage(conn: Connection, engine_ids: list[int], *, since: datetime) -> dict[int, int]:
    """Lock the engines until the transaction ends, then read what each took since `since`.

    Executors in other processes that share an engine read and use its daily quota in turn:
    the caller claims and assigns its batch before the lock is released.
    """
    engines.lock_engines(conn, engine_ids)
    return engine_usage(conn, engine_ids, since=since)


def claim_batch(
    conn: Connection,
    run_id: int,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    recent: RecentSends | None,
    engines_for: Callable[[int], Sequence[int]],
    engines_for_batch: Callable[[list[Delivery]], Sequence[int]] | None = None,
    start_id: int = 0,
) -> list[tuple[Delivery, int]] | None:
    """Claim up to `limit` pending deliveries and give each its engine, in the caller's
    transaction; None when none was pending. The claim looks from `start_id` on first
    (`claim_pending`).

    Claimed rows sent to recently (`recent`) or suppressed since the freeze become `skipped`;
    `engines_for(n)` picks the engines of the next n sends (its first k are `engines_for(k)`,
    so it is asked once, for the full claim); those of the rows left are written with `now`
    as their send time: from then on they count against the engine's daily quota.
    `engines_for_batch`, when given, picks them from the deliveries themselves instead (a
    follow-up prefers the engine of the step before). When every row of a full claim would go
    to one engine (one lane, or one left with quota), the claim itself writes it: one UPDATE
    per row, not two.

    With a dedupe window the workflow's claim lock is taken first: the rows claimed here are
    `sending` before any other run of the workflow may look at what this one holds.
    """
    if recent is not None:
        lock_workflow_claims(conn, recent.workflow_id)
    planned = [] if engines_for_batch else list(engines_for(limit))
    sole = _sole_engine(planned, limit)
    claimed = claim_pending(
        conn, run_id, worker_id=worker_id, limit=limit, now=now, engine_id=sole, start_id=start_id
    )
    if not claimed:
        return None
    batch = claimed
    if recent is not None:
        batch = _skip_recently_sent(conn, run_id, batch, recent, now=now)
    batch = suppressions.skip_suppressed(conn, batch, now=now)  # suppressed since the freeze
    if sole is not None:  # the claim wrote the engine; a row skipped since takes none
        kept = {d.id for d in batch}
        _unassign(conn, [d.id for d in claimed if d.id not in kept])
        return [(d, sole) for d in batch]
    chosen = list(engines_for_batch(batch)) if engines_for_batch else planned[: len(batch)]
    assign_engines(
        conn, {d.id: engine_id for d, engine_id in zip(batch, chosen, strict=True)}, now=now
    )
    return list(zip(batch, chosen, strict=True))


def _sole_engine(chosen: Sequence[int], limit: int) -> int | None:
    """The engine every row of a full claim would go to (one lane, or one left with quota),
    which the claim itself then writes; None when the rows would be spread or cut short."""
    if len(chosen) == limit and len(set(chosen)) == 1:
        return chosen[0]
    return None


def _unassign(conn: Connection, delivery_ids: list[int]) -> None:
    """Skipped rows of a claim that wrote their engine: no engine and no send time, as when
    the engines are written after the skips."""
    if delivery_ids:
        conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(delivery_ids))
            .values(engine_id=None, sent_at=None)
        )


def _skip_recently_sent(
    conn: Connection, run_id: int, batch: list[Delivery], recent: RecentSends, *, now: datetime
) -> list[Delivery]:
    """Never twice: claimed deliveries whose address another run of the workflow sent to
    inside the dedupe window, or is sending now (a double click on send-now, a trigger while
    the scheduled run sends), are skipped with a reason naming that run."""
    keys = [d.email_normalized for d in batch if d.email_normalized]
    taken = recently_sent(
        conn, workflow_id=recent.workflow_id, run_id=run_id, keys=keys, since=recent.since
    )
    if not taken:
        return batch
    record_outcomes(
        conn,
        [
            {
                "delivery_id": d.id,
                "target": DeliveryStatus.SKIPPED,
                "attempts": 0,
                "reason": sent_recently_reason(
                    taken[d.email_normalized], window_hours=recent.window_hours
                ),
            }
            for d in batch
            if d.email_normalized in taken
        ],
        now=now,
    )
    return [d for d in batch if d.email_normalized not in taken]


def record_batch(
    conn: Connection,
    outcomes: list[dict[str, Any]],
    unstarted: list[int],
    *,
    now: datetime,
    worker_id: str | None = None,
) -> None:
    """A batch's end in the caller's transaction: the outcomes not yet recorded (the keys of
    `deliveries.record_outcome`), and the claimed deliveries never started back to pending
    (or `cancelled`, when their run was cancelled meanwhile); those of `worker_id` only, when
    given."""
    if unstarted:
        # the run before its deliveries, the order a cancel or a take-over locks them in
        _lock_runs_of(conn, unstarted)
    record_outcomes(conn, outcomes, now=now)
    if unstarted:
        release_unstarted(conn, unstarted, now=now, worker_id=worker_id)


def claim_pending(
    conn: Connection,
    run_id: int,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    engine_id: int | None = None,
    start_id: int = 0,
) -> list[Delivery]:
    """Atomically move up to `limit` pending deliveries to `sending` for this worker (and to
    `engine_id` with `now` as their send time, when given: `assign_engines` in one statement).

    The rows from `start_id` on are looked at first: a worker passes the id after its last
    claim, so a claim does not walk the rows already sent (their index entries stay until a
    vacuum, and statistics taken while the run was all pending make the planner scan the
    primary key from the run's first row). Only when those fall short is the rest looked for
    from the start: rows that came back to pending, and the run's last rows.

    Same shape as claiming a run: SKIP LOCKED on PostgreSQL, the status guard everywhere.
    The candidates are a MATERIALIZED CTE on PostgreSQL: as a plain `IN (subquery)` the planner
    may rescan the LIMITed subquery once per outer row (nested-loop semi-join), and each rescan
    skips the rows this statement already updated, so one claim could take every pending row.
    """
    rows: list[sa.Row[Any]] = []
    for start in (start_id, 0) if start_id else (0,):
        statement = claim_statement(
            run_id, worker_id=worker_id, limit=limit - len(rows), now=now, start_id=start
        )
        if engine_id is not None:
            statement = statement.values(engine_id=engine_id, sent_at=now)
        rows += conn.execute(statement).all()
        if len(rows) == limit:
            break
    return sorted((to_delivery(row) for row in rows), key=lambda d: d.id)


def claim_statement(
    run_id: int, *, worker_id: str, limit: int, now: datetime, start_id: int = 0
) -> sa.Update:
    """The claim of `claim_pending`: its candidates are the first `limit` pending rows of the
    run in id order (from `start_id` on), one range of ix_deliveries_run_status (run_id,
    status, id), so a claim costs the same at the start and at the end of a run of millions."""
    candidates = (
        sa.select(deliveries.c.id)
        .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING)
        .where(deliveries.c.id >= start_id)
        .where(dns_waits.claimable())  # rows waiting for DNS: their domain is looked up first
        .order_by(deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("claim_candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        deliveries.update()
        .where(
            deliveries.c.id.in_(sa.select(candidates.c.id)),
            status_is(DeliveryStatus.PENDING),  # found by id, not by status (`status_is`)
        )
        # handed_at is this claim's to set: a row sent before (a retry) starts unhanded again
        .values(status=DeliveryStatus.SENDING, claimed_by=worker_id, updated_at=now, handed_at=None)
        .returning(*deliveries.c)
    )


def lock_workflow_claims(conn: Connection, workflow_id: int) -> None:
    """Hold the workflow's claim lock until the transaction ends: the claims of its runs, in
    any process, read what the other runs hold and mark their own rows `sending` in turn.

    PostgreSQL: a transaction-scoped advisory lock keyed by the schema and the workflow, taken
    by nothing else (a row lock on the workflow would also wait on edits of the workflow and
    could deadlock with them; the engines' quota locks are always taken before this one).
    Each statement after it sees what the previous holder committed (READ COMMITTED).
    SQLite: a no-op UPDATE takes the database's write lock before anything is read (the
    driver starts a transaction only at the first write, so a SELECT first would read outside
    it), and the one writer at a time is the lock.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(
            # a column no other table refers to, so no foreign key is checked
            workflows.update().where(workflows.c.id == workflow_id).values(name=workflows.c.name)
        )
        return
    conn.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock("
            "hashtext('outreach.workflow_claims.' || coalesce(current_schema(), '')), "
            "CAST(:workflow_id AS integer))"
        ),
        {"workflow_id": workflow_id},
    )


def recently_sent(
    conn: Connection, *, workflow_id: int, run_id: int | None, keys: list[str], since: datetime
) -> dict[str, Taken]:
    """Which of `keys` another run of the workflow holds, and which run (key -> Taken): sent
    to (or may have: unknown) since `since`, or `sending` right now, whether that run is older
    or newer than this one. Read under `lock_workflow_claims`, so two runs racing send once.
    `run_id` None (the pre-flight, before any run): every run of the workflow counts."""
    if not keys:
        return {}
    rows = conn.execute(
        recently_sent_query(workflow_id=workflow_id, run_id=run_id, keys=keys, since=since)
    )
    return taken_by((key, int(other), bool(now_sending)) for key, other, now_sending in rows)


def recently_sent_query(
    *, workflow_id: int, run_id: int | None, keys: list[str], since: datetime
) -> sa.Select[Any]:
    """The rows of `recently_sent`: looked up by address in ix_deliveries_email_normalized
    (a few rows per address). The status and time test is a CASE, which no index serves, so
    no planner reads it as two ranges of ix_deliveries_status_updated instead: every row sent
    inside the window (a million after a large run) for each batch of a few hundred addresses,
    as both SQLite and PostgreSQL otherwise do. The address lookup is a CTE that PostgreSQL
    materializes before the join to runs: with the statistics of a freshly frozen run (no
    autovacuum yet) it otherwise scans the workflow's runs and reads every delivery of each by
    ix_deliveries_run_latency, a cost that grows with the run (0.5 s a batch at a million)."""
    sending = deliveries.c.status == DeliveryStatus.SENDING
    done = sa.and_(
        deliveries.c.status.in_([DeliveryStatus.SENT, DeliveryStatus.UNKNOWN]),
        deliveries.c.updated_at >= since,
    )
    held = sa.case((sending, sa.true()), (done, sa.true()), else_=sa.false())
    where = [deliveries.c.email_normalized.in_(keys), held]
    if run_id is not None:
        where.append(deliveries.c.run_id != run_id)
    by_address = (
        sa.select(deliveries.c.email_normalized, deliveries.c.run_id, sending.label("sending"))
        .where(*where)
        .cte("by_address")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return (
        sa.select(by_address.c.email_normalized, by_address.c.run_id, by_address.c.sending)
        .join(runs, runs.c.id == by_address.c.run_id)
        .where(runs.c.workflow_id == workflow_id)
    )


def release_unstarted(
    conn: Connection, delivery_ids: list[int], *, now: datetime, worker_id: str | None = None
) -> int:
    """Put claimed deliveries that were never attempted (or whose engine failed before anything
    went out) back to `pending` (run paused or stopped), or make them `cancelled` when their
    run was cancelled meanwhile (`in_flight.back_to_pending`). With `worker_id`, only rows it
    still holds: a row a take-over gave to another worker stays that worker's.
    """
    if not delivery_ids:
        return 0
    _lock_runs_of(conn, delivery_ids)
    held = [deliveries.c.id.in_(delivery_ids), status_is(DeliveryStatus.SENDING)]
    if worker_id is not None:
        held.append(deliveries.c.claimed_by == worker_id)
    result = conn.execute(deliveries.update().where(*held).values(**in_flight.back_to_pending(now)))
    return result.rowcount


def _lock_runs_of(conn: Connection, delivery_ids: list[int]) -> None:
    """Lock the runs of these deliveries until the transaction ends (`in_flight.lock_runs`)."""
    in_flight.lock_runs(
        conn, sa.select(deliveries.c.run_id).where(deliveries.c.id.in_(delivery_ids))
    )


def assign_engines(conn: Connection, assignment: dict[int, int], *, now: datetime) -> int:
    """Write which engine takes each claimed delivery, with `now` as its send time.

    Written in the claim's transaction, so from then on the delivery counts against the
    engine's daily quota for every other run and process, even if this one dies mid-send.
    One UPDATE per engine (one in all for a single lane), not one per delivery.
    """
    by_engine: dict[int, list[int]] = {}
    for delivery_id, engine_id in assignment.items():
        by_engine.setdefault(engine_id, []).append(delivery_id)
    written = 0
    for engine_id, delivery_ids in by_engine.items():
        written += conn.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(delivery_ids), status_is(DeliveryStatus.SENDING))
            .values(engine_id=engine_id, sent_at=now)
        ).rowcount
    return written


def in_flight_claimants(conn: Connection, run_id: int, *, besides: str) -> dict[str | None, int]:
    """Who else holds `sending` deliveries of the run (worker id -> how many)."""
    rows = conn.execute(
        sa.select(deliveries.c.claimed_by, sa.func.count())
        .where(
            deliveries.c.run_id == run_id,
            deliveries.c.status == DeliveryStatus.SENDING,
            sa.or_(deliveries.c.claimed_by.is_(None), deliveries.c.claimed_by != besides),
        )
        .group_by(deliveries.c.claimed_by)
    )
    return {worker: int(n) for worker, n in rows}


def settle_claimed(conn: Connection, run_id: int, *, claimed_by: str | None, now: datetime) -> int:
    """The `sending` deliveries of one dead worker: those handed to their engine become
    `unknown` (deliberately not resent), the others go back to `pending`
    (`in_flight.settle`). Returns how many became unknown."""
    holder = (
        deliveries.c.claimed_by.is_(None)
        if claimed_by is None
        else deliveries.c.claimed_by == claimed_by
    )
    return in_flight.settle(conn, run_id, now=now, holder=holder)
