"""The batch loop: claim a batch, send it concurrently, record it, until the run must stop.

Each turn reads the run (time limit, status, holder, send window, complaint brake) and claims
its batch in one transaction, and sends outside any transaction: each message is marked handed
in a short transaction right before its engine call, which also records the outcomes ended
since (`handoff`); the batch's last outcomes and its unstarted deliveries are recorded in one
more. Deliberate: a crash in between leaves at most one batch `sending`; the next executor
marks `unknown` only its deliveries handed over and not recorded, at most the concurrency, and
does not resend them; the rest of the batch goes back to pending and is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import deliveries, delivery_claims, follow_ups, retry_waits, runs
from outreach_core.adapters.store.delivery_claims import RecentSends
from outreach_core.domain.engine_rotation import (
    EngineSlot,
    assign_engines,
    assign_preferred,
    capacity,
    engine_error_reason,
    next_utc_midnight,
    quota_pause_reason,
    utc_day_start,
)
from outreach_core.domain.models import Delivery
from outreach_core.domain.retry import AUTO_PAUSE_WINDOW, should_auto_pause
from outreach_core.domain.states import DeliveryStatus, RunStatus, StopReason
from outreach_core.services import compliance
from outreach_core.services.sending import dns_recheck
from outreach_core.services.sending.context import RunContext
from outreach_core.services.sending.deliver import Outcome, deliver
from outreach_core.services.sending.lanes import EngineLane
from outreach_core.services.sending.workers import StopSignal, others_done

#: how often a run's owner looks again for batches other workers still hold
ASSIST_POLL_S = 0.5

_NO_LIMIT = nullcontext()


def claim_batch(
    conn: Connection, ctx: RunContext
) -> tuple[StopReason | None, list[tuple[Delivery, EngineLane]]]:
    """Claim the next batch and give each delivery its engine, in the caller's transaction.

    Daily quotas are re-read from the ledger here, under a lock on the engines, and the batch's
    engines are written before the lock is released: executors in other processes that share an
    engine take its quota in turn, and the batch is never larger than the quota left. So the
    ledger never counts more than the quota per UTC day; a send counts from the moment it is
    claimed, and an `unknown` one keeps counting (it may have gone out). Returns (why the run
    stops, []) when it cannot go on: ENGINE (no engine left), QUOTA (every quota used, rows
    still pending) or DONE.
    """
    now = ctx.clock()
    # deferred deliveries whose scheduled retry has come are claimed like pending ones, first
    if retry_waits.release_due(conn, ctx.run.id, now=now):
        ctx.claim_from = 0
    # only engines with a daily quota need the lock and the count
    counted = [lane.engine.id for lane in ctx.lanes if lane.engine.limits.daily_quota]
    used = delivery_claims.lock_quota_usage(conn, counted, since=utc_day_start(now))
    for lane in ctx.lanes:
        lane.used_today = used.get(lane.engine.id, 0)
    slots = [lane.slot() for lane in ctx.lanes]
    if all(slot.error is not None for slot in slots):
        ctx.stop_reason = engine_error_reason(slots)
        return StopReason.ENGINE, []
    room = capacity(slots)
    if room == 0:
        if not deliveries.has_pending(conn, ctx.run.id):
            return StopReason.DONE, []
        resume_at = next_utc_midnight(now)
        ctx.stop_reason = quota_pause_reason(slots, resume_at=resume_at)
        return StopReason.QUOTA, []
    size = ctx.run.options.batch_size if room is None else min(ctx.run.options.batch_size, room)
    claimed = delivery_claims.claim_batch(
        conn,
        ctx.run.id,
        worker_id=ctx.worker_id,
        limit=size,
        now=now,
        recent=_recent_sends(ctx, now=now),
        engines_for=lambda n: assign_engines(slots, n),
        engines_for_batch=_previous_engines(conn, slots) if ctx.run.step > 1 else None,
        start_id=ctx.claim_from,
    )
    if claimed is None:
        return StopReason.DONE, []
    if claimed:
        ctx.claim_from = max(d.id for d, _ in claimed) + 1
    lanes = {lane.engine.id: lane for lane in ctx.lanes}
    return None, [(d, lanes[engine_id]) for d, engine_id in claimed]


def _previous_engines(
    conn: Connection, slots: list[EngineSlot]
) -> Callable[[list[Delivery]], list[int]]:
    """A follow-up's engine choice: the engine that sent each recipient the step before, while
    it has quota left today and no error, else the rotation's."""

    def choose(batch: list[Delivery]) -> list[int]:
        previous = follow_ups.previous_engines(conn, [d.id for d in batch])
        return assign_preferred(slots, [previous.get(d.id) for d in batch])

    return choose


def _recent_sends(ctx: RunContext, *, now: datetime) -> RecentSends | None:
    """Never twice: the run's dedupe window (another run of the workflow, e.g. a double click
    on send-now, sent to the address within it or is sending it now); None when the run has
    none (a window of 0 turns dedupe off, in-flight sends of other runs included)."""
    window = ctx.run.options.dedupe_window_hours
    if window <= 0:
        return None
    return RecentSends(
        workflow_id=ctx.run.workflow_id, since=now - timedelta(hours=window), window_hours=window
    )


def record(ctx: RunContext, unstarted: list[int]) -> None:
    """One transaction per batch: the outcomes no hand-off recorded yet (those that ended after
    the batch's last one), and the deliveries that were not started, which go back to pending.
    Each outcome keeps its own end time (`sent_at`, `updated_at`); `now` is for the rest.

    Deliberate: a crash before this commit leaves those outcomes `sending`, at most the
    concurrency, which the next executor marks `unknown` and does not resend.
    """
    with ctx.ws.db.begin() as conn:
        delivery_claims.record_batch(
            conn, ctx.handoffs.take_ended(), unstarted, now=ctx.clock(), worker_id=ctx.worker_id
        )


def _done_or_waiting(ctx: RunContext) -> StopReason:
    """DONE, or WAIT while deferred deliveries wait for their scheduled retry (the reason says
    how many and when the next one is)."""
    with ctx.ws.db.connect() as conn:
        waiting = retry_waits.waiting(conn, ctx.run.id)
    if not waiting.count or waiting.next_at is None:
        return StopReason.DONE
    ctx.stop_reason = waiting_reason(waiting.count, waiting.next_at)
    return StopReason.WAIT


def waiting_reason(count: int, next_at: datetime) -> str:
    """A waiting run's status reason."""
    retries = "retry" if count == 1 else "retries"
    return f"waiting for {count} {retries}, next at {next_at:%Y-%m-%d %H:%M:%S} UTC"


def _domain_of(delivery: Delivery) -> str:
    return (delivery.email_normalized or delivery.email).rpartition("@")[2]


async def send_batches(ctx: RunContext, stop: StopSignal, lost: asyncio.Event) -> StopReason:
    """Claim and send batches until done; returns why it stopped (StopReason)."""
    opts = ctx.run.options
    limit = asyncio.Semaphore(opts.concurrency)

    async def guarded(delivery: Delivery, lane: EngineLane) -> Outcome | None:
        # A saturated recipient domain waits here, holding no concurrency slot and no token,
        # so the batch's other domains go on meanwhile.
        if lane.domains is not None:
            await lane.domains.acquire(_domain_of(delivery))
        async with limit, lane.slots or _NO_LIMIT:
            # after SIGTERM the sends under way finish; the rest of the batch goes back to
            # pending, so a slow batch does not outlast a daemon's stop grace
            if lane.error or lost.is_set() or stop.event.is_set():
                return None
            outcome = await deliver(ctx, lane, delivery)
        if outcome is not None:
            ctx.handoffs.ended(outcome.as_row())  # the next hand-off, or `record`, writes it
            if outcome.status is DeliveryStatus.SENT:
                lane.sent += 1
        return outcome

    limit_s = None if opts.time_limit_minutes is None else opts.time_limit_minutes * 60
    while True:
        if stop.is_set() or lost.is_set():
            return StopReason.STOP
        if ctx.owner:  # rows waiting for DNS: their domains looked up again before any claim
            await dns_recheck.recheck_waiting(ctx)
        with ctx.ws.db.begin() as conn:
            current = runs.get_run(conn, ctx.run.id)
            started = current.started_at or current.created_at
            if limit_s is not None and (ctx.clock() - started).total_seconds() > limit_s:
                return StopReason.TIME
            if current.status is not RunStatus.SENDING or (
                ctx.owner and current.worker_id != ctx.worker_id
            ):
                return StopReason.STATUS
            if not ctx.window_open():
                return StopReason.WINDOW
            ctx.stop_reason = compliance.complaint_brake_any(
                conn, [lane.engine.id for lane in ctx.lanes]
            )
            if ctx.stop_reason:
                return StopReason.AUTO
            why, batch = claim_batch(conn, ctx)
        if ctx.run.step > 1 and batch:  # a follow-up: each delivery's thread, after the claim
            with ctx.ws.db.connect() as conn:
                ctx.threads.load(
                    conn,
                    [d for d, _ in batch],
                    trigger=ctx.run.trigger,
                    unsubscribe=ctx.unsubscribe,
                )
        if why is StopReason.DONE:
            # the owner ends the run only once assisting daemons have recorded their batches
            if ctx.owner and not others_done(
                ctx.ws, ctx.run.id, worker_id=ctx.worker_id, now=ctx.clock()
            ):
                await asyncio.sleep(ASSIST_POLL_S)
                continue
            # only rows waiting for DNS left: the run pauses and looks again shortly
            waiting = dns_recheck.waiting_pause_reason(ctx.ws, ctx.run.id) if ctx.owner else None
            if waiting:
                ctx.stop_reason = waiting
                return StopReason.DNS
            return _done_or_waiting(ctx)
        if why is not None:
            return why
        results = await asyncio.gather(*(guarded(d, lane) for d, lane in batch))
        outcomes = [r for r in results if r is not None]
        done = {o.delivery_id for o in outcomes}
        record(ctx, [d.id for d, _ in batch if d.id not in done])
        for lane in ctx.lanes:  # other processes get their turn at the engine's slots
            await lane.release_idle()
        ctx.recent_failures.extend(
            o.status is not DeliveryStatus.SENT for o in outcomes if o.attempts > 0
        )
        del ctx.recent_failures[:-AUTO_PAUSE_WINDOW]
        if should_auto_pause(ctx.recent_failures, opts.auto_pause_failure_rate):
            failed = sum(ctx.recent_failures)
            ctx.stop_reason = (
                f"auto-pause: {failed} of the last {len(ctx.recent_failures)} sends failed "
                f"(threshold {opts.auto_pause_failure_rate:.0%})"
            )
            return StopReason.AUTO
