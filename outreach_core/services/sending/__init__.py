"""A run from QUEUED to its end: claim, freeze the audience, send, record.

At-most-once: a delivery is claimed (`sending`) in the database before its message is handed
to the engine, and its outcome is recorded right after. If the process dies in between, the
next executor marks it `unknown` and deliberately does not resend it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.errors import MessageError
from typing import Any

from sqlalchemy.engine import Connection
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from outreach_core.adapters import crypto
from outreach_core.adapters.senders import Sender, open_sender
from outreach_core.adapters.senders.base import SendResult
from outreach_core.adapters.store import (
    audiences,
    daemons,
    deliveries,
    engines,
    runs,
    suppressions,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import cadence
from outreach_core.domain.cadence import SendWindow
from outreach_core.domain.clock import utcnow
from outreach_core.domain.engine_rotation import (
    assign_engines,
    capacity,
    engine_error_reason,
    next_utc_midnight,
    quota_pause_reason,
    utc_day_start,
)
from outreach_core.domain.message import Outgoing, build_message
from outreach_core.domain.message import Sender as FromAddress
from outreach_core.domain.models import Delivery, Engine, Run, SendOptions
from outreach_core.domain.mx import DomainResult
from outreach_core.domain.planning import (
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
    render_abort_reason,
    render_context,
)
from outreach_core.domain.ratelimit import TokenBucket
from outreach_core.domain.retry import (
    AUTO_PAUSE_WINDOW,
    RetryPolicy,
    backoff_seconds,
    should_auto_pause,
    should_retry,
    tenacity_wait,
)
from outreach_core.domain.states import (
    ACTIVE_RUN_STATES,
    FINAL_RUN_STATES,
    DeliveryStatus,
    RunStatus,
)
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import (
    MailtoLinks,
    UnsubscribeLinks,
    list_unsubscribe_headers,
)
from outreach_core.errors import InputError, RunBusy, SendError, SendErrorKind, TemplateError
from outreach_core.services import compliance, preflight
from outreach_core.services.sending import audience_query
from outreach_core.services.sending import report as run_report
from outreach_core.services.sending.lanes import EngineLane

log = logging.getLogger("outreach.executor")

#: how often an executor refreshes its run's heartbeat
HEARTBEAT_INTERVAL_S = 5.0
#: a run whose heartbeat is older than this is taken to be orphaned
STALE_AFTER = timedelta(seconds=60)


def new_worker_id() -> str:
    """`host:pid:random`: enough to tell whether a holder's process is still alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_alive(run: Run, *, now: datetime) -> bool:
    """Whether the executor named on the run is still working on it.

    On this host a dead process is known at once; elsewhere only a stale heartbeat tells.
    """
    if run.worker_id is None or run.heartbeat_at is None:
        return False
    if now - run.heartbeat_at > STALE_AFTER:
        return False
    host, _, rest = run.worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


@dataclass
class StopSignal:
    """Set by SIGTERM/SIGINT: the executor finishes its current batch, then lets the run go."""

    event: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


def acquire_run(ws: Workspace, run_id: int, *, worker_id: str) -> Run:
    """Make this worker the executor of a run: claim it if QUEUED, continue it if PAUSED,
    take it over if its previous executor is gone. Raises RunBusy otherwise."""
    with ws.db.begin() as conn:
        claimed = runs.claim_next_run(conn, worker_id=worker_id, now=utcnow(), run_id=run_id)
        if claimed:
            return claimed
        run = runs.get_run(conn, run_id)
        if run.status is RunStatus.PAUSED:
            runs.set_run_status(
                conn,
                run_id,
                expected=RunStatus.PAUSED,
                target=RunStatus.SENDING,
                now=utcnow(),
                worker_id=worker_id,
            )
            deliveries.mark_in_flight_unknown(conn, run_id, now=utcnow())
            return runs.get_run(conn, run_id)
    return take_over(ws, run_id, worker_id=worker_id)


def take_over(ws: Workspace, run_id: int, *, worker_id: str) -> Run:
    """Become the executor of an interrupted run; in-flight deliveries become `unknown`.

    Raises RunBusy while its previous executor is alive.
    """
    now = utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in ACTIVE_RUN_STATES:
            raise RunBusy(f"{run} has nothing to resume")
        if holder_is_alive(run, now=now):
            raise RunBusy(
                f"{run} is being sent by {run.worker_id} (heartbeat {run.heartbeat_at:%H:%M:%S} "
                "UTC); try again once that process has stopped"
            )
        if not runs.take_over_run(conn, run, worker_id=worker_id, now=now):
            raise RunBusy(f"run {run_id} was just taken over by another executor")
        unknown = _mark_abandoned_unknown(conn, run, worker_id=worker_id, now=now)
        if unknown:
            log.warning(
                "run %s: %s in-flight deliveries marked unknown, not resent", run_id, unknown
            )
        return runs.get_run(conn, run_id)


def _mark_abandoned_unknown(conn: Connection, run: Run, *, worker_id: str, now: datetime) -> int:
    """In-flight deliveries of the run's previous holder, and of any claimant that is not a live
    daemon, become `unknown`. A live daemon assisting the run keeps its batch: it records those
    outcomes itself, so the ledger says `sent` for what went out."""
    marked = 0
    for claimant in deliveries.in_flight_claimants(conn, run.id, besides=worker_id):
        daemon = daemons.get_daemon(conn, claimant) if claimant else None
        assisting = (
            claimant != run.worker_id
            and daemon is not None
            and daemon.is_alive(now=now, stale_after=DAEMON_STALE_AFTER)
        )
        if not assisting:
            marked += deliveries.mark_claimed_unknown(conn, run.id, claimed_by=claimant, now=now)
    return marked


def unsubscribe_links(ws: Workspace, options: SendOptions) -> UnsubscribeLinks | None:
    """The run's `unsubscribe_url` maker, when its options name a base URL."""
    if not options.unsubscribe_base_url:
        return None
    return UnsubscribeLinks(options.unsubscribe_base_url, compliance.unsubscribe_key(ws))


def mailto_links(ws: Workspace, options: SendOptions) -> MailtoLinks | None:
    """The run's List-Unsubscribe `mailto:` maker (a token per recipient in the subject, for
    `mailbox_unsubscribe` to check), when its options name an unsubscribe address."""
    if not options.unsubscribe_mailto:
        return None
    return MailtoLinks(options.unsubscribe_mailto, compliance.unsubscribe_key(ws))


def freeze_audience(
    ws: Workspace, run: Run, *, domains: Mapping[str, DomainResult] | None = None
) -> bool:
    """INITIALIZING -> SENDING: one delivery row per audience row, all in one transaction.

    `domains` (the pre-flight's DNS verdicts; None when the run skips MX checks) skips rows
    whose domain cannot receive mail. Returns False (and fails the run) when the template
    cannot compile, or when rows do not render and the run's `on_render_error` is abort
    (then no delivery row is written).
    """
    now = utcnow()
    try:
        queried = _queried_rows(ws, run)
    except InputError as exc:  # the audience query failed: the run fails, nothing is frozen
        with ws.db.begin() as conn:
            _fail_initializing(conn, run.id, reason=f"audience query failed: {exc}", now=now)
        return False
    with ws.db.begin() as conn:
        if deliveries.has_deliveries(conn, run.id):  # frozen before a crash in this state
            runs.set_run_status(
                conn, run.id, expected=RunStatus.INITIALIZING, target=RunStatus.SENDING, now=now
            )
            return True
        workflow = workflows.get_workflow(conn, run.workflow_id)
        audience = audiences.get_audience(conn, workflow.audience_id)
        version = templates.get_version(conn, run.template_version_id or 0)
        engine = engines.get_engine(conn, run.engine_id or 0)
        try:
            template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
        except TemplateError as exc:
            reason = f"template {version.name} v{version.version}: {exc}"
            _fail_initializing(conn, run.id, reason=reason, now=now)
            return False
        plan = list(
            plan_deliveries(
                audiences.iter_rows(conn, audience.id) if queried is None else queried,
                email_column=audience.email_column,
                template=template,
                sender=SenderIdentity(engine.from_email, engine.from_name),
                run_date=run.created_at,
                domains=domains,
                unsubscribe=unsubscribe_links(ws, run.options),
            )
        )
        abort = render_abort_reason(plan, run.options.on_render_error)
        if abort:
            _fail_initializing(conn, run.id, reason=abort, now=now)
            return False
        pending_keys = [p.key for p in plan if p.status is DeliveryStatus.PENDING and p.key]
        plan = mark_suppressed(plan, suppressions.suppressed_among(conn, pending_keys))
        deliveries.insert_deliveries(
            conn,
            (
                {
                    "run_id": run.id,
                    "row_number": p.row_number,
                    "email": p.email,
                    "email_normalized": p.key,
                    "variables": p.variables,
                    "status": p.status,
                    "reason": p.reason,
                    "attempts": 0,
                    # set when an engine takes the delivery (rotation picks it per send)
                    "engine_id": None,
                    "updated_at": now,
                }
                for p in plan
            ),
        )
        runs.set_run_status(
            conn, run.id, expected=RunStatus.INITIALIZING, target=RunStatus.SENDING, now=now
        )
    return True


def _fail_initializing(conn: Connection, run_id: int, *, reason: str, now: datetime) -> None:
    """INITIALIZING -> FAILED with the reason the audience could not be frozen."""
    runs.set_run_status(
        conn,
        run_id,
        expected=RunStatus.INITIALIZING,
        target=RunStatus.FAILED,
        now=now,
        reason=reason,
    )


def _queried_rows(ws: Workspace, run: Run) -> list[tuple[int, dict[str, Any]]] | None:
    """A SQL audience's rows queried for this run (None: stored rows, or already frozen)."""
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
    return audience_query.query_rows(ws, run)


@dataclass
class _Context:
    ws: Workspace
    run: Run
    worker_id: str
    template: CompiledTemplate
    #: every engine of the workflow, in its order
    lanes: list[EngineLane]
    #: the run's own rate (SendOptions); each engine's bucket applies on top
    bucket: TokenBucket
    unsubscribe: UnsubscribeLinks | None = None
    mailto: MailtoLinks | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: why the run stops short: auto-pause, every engine failed, or every quota used up
    stop_reason: str | None = None
    #: True per recent attempted send that did not end `sent` (for auto-pause)
    recent_failures: list[bool] = field(default_factory=list)
    #: False for a worker assisting another's run: it claims batches but never ends the run
    owner: bool = True
    #: the run's send window, parsed once per run (None: the run may send at any hour)
    window: SendWindow | None = None


async def _heartbeat(ws: Workspace, run_id: int, worker_id: str, lost: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)
        with ws.db.begin() as conn:
            if not runs.heartbeat(conn, run_id, worker_id=worker_id, now=utcnow()):
                log.error("run %s: lost to another executor; stopping", run_id)
                lost.set()
                return


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed delivery, to be written to the ledger."""

    delivery_id: int
    status: DeliveryStatus
    attempts: int
    reason: str | None = None
    message_id: str | None = None
    provider_message_id: str | None = None
    error_kind: str | None = None
    reply_code: int | None = None
    latency_ms: int | None = None


def _unsubscribe_headers(ctx: _Context, delivery: Delivery) -> dict[str, str]:
    """The same per-recipient link as the template's `unsubscribe_url`, plus the per-recipient
    mailto."""
    url = ctx.unsubscribe(delivery.email) if ctx.unsubscribe else None
    mailto = ctx.mailto(delivery.email) if ctx.mailto else None
    return list_unsubscribe_headers(mailto=mailto, url=url)


async def _send_once(ctx: _Context, lane: EngineLane, outgoing: Outgoing) -> SendResult:
    """One attempt through the lane's engine, after the run's and the engine's token buckets."""
    assert lane.sender is not None  # a lane without a sender has an error and gets no sends
    await ctx.bucket.acquire()
    await lane.bucket.acquire()
    started = time.perf_counter()
    result = await lane.sender.send(outgoing)
    return replace(result, latency_ms=round((time.perf_counter() - started) * 1000))


async def _send_with_retries(
    ctx: _Context, lane: EngineLane, outgoing: Outgoing, attempts: list[int]
) -> SendResult:
    """Send; a TRANSIENT failure is retried (tenacity, the retry policy's waits) up to the run's
    attempt limit. The first try runs without tenacity: it is the common case and the cheap one.
    """

    async def once() -> SendResult:
        attempts[0] += 1
        return await _send_once(ctx, lane, outgoing)

    try:
        return await once()
    except SendError as exc:
        if not should_retry(exc) or ctx.run.options.max_attempts <= 1:
            if should_retry(exc):
                raise _Exhausted(exc) from None
            raise
        first_wait = backoff_seconds(ctx.retry_policy, exc, 1)
    await asyncio.sleep(first_wait)
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(should_retry),
            wait=tenacity_wait(ctx.retry_policy, offset=1),
            stop=stop_after_attempt(ctx.run.options.max_attempts - 1),
        ):
            with attempt:
                result = await once()
    except RetryError as exc:
        raise _Exhausted(exc.last_attempt.exception()) from None
    return result


async def _send_with_ambiguous_retry(
    ctx: _Context, lane: EngineLane, outgoing: Outgoing, attempts: list[int], notes: list[str]
) -> SendResult:
    """`_send_with_retries`, plus exactly one more attempt after an AMBIGUOUS failure when the
    run's options allow it (`retry_ambiguous_once`); `notes` then says so for the ledger.

    Deliberate: the extra attempt may duplicate a message that did go out; that is the risk
    the workflow opted into. Without the option an ambiguous send is never retried.
    """
    try:
        return await _send_with_retries(ctx, lane, outgoing, attempts)
    except SendError as exc:
        if exc.kind is not SendErrorKind.AMBIGUOUS or not ctx.run.options.retry_ambiguous_once:
            raise
        notes.append(f"ambiguous: {exc}; retried once because the workflow allows it")
    attempts[0] += 1
    try:
        return await _send_once(ctx, lane, outgoing)
    except SendError as exc:
        if exc.kind is SendErrorKind.TRANSIENT:
            raise _Exhausted(exc) from None
        raise


class _Exhausted(Exception):
    """Every allowed attempt failed transiently; carries the last error."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__(str(last))
        self.last = last


def _with_notes(notes: list[str], reason: str | None) -> str | None:
    parts = [*notes, reason] if reason else notes
    return "; then ".join(parts) if parts else None


async def _deliver(ctx: _Context, lane: EngineLane, delivery: Delivery) -> Outcome | None:
    """Send one claimed delivery through the lane's engine; its outcome, or None when the
    engine failed before anything may have gone out (the delivery then goes back to pending
    and the engine leaves the rotation)."""
    attempts_made = [0]
    notes: list[str] = []
    identity = SenderIdentity(lane.engine.from_email, lane.engine.from_name)
    try:
        rendered = ctx.template.render(
            render_context(
                delivery.variables,
                email=delivery.email,
                sender=identity,
                run_date=ctx.run.created_at,
                unsubscribe=ctx.unsubscribe,
            )
        )
        outgoing = build_message(
            rendered,
            sender=FromAddress(identity.email, identity.name),
            recipient=delivery.email,
            delivery_id=delivery.id,
            now=utcnow(),
            extra_headers=_unsubscribe_headers(ctx, delivery),
        )
        result = await _send_with_ambiguous_retry(ctx, lane, outgoing, attempts_made, notes)
    except TemplateError as exc:
        return Outcome(delivery.id, DeliveryStatus.FAILED, attempts_made[0], f"render_error: {exc}")
    except (ValueError, MessageError) as exc:  # the message could not be built for this row
        reason = f"message_error: {type(exc).__name__}: {exc}"
        return Outcome(delivery.id, DeliveryStatus.FAILED, attempts_made[0], reason)
    except _Exhausted as exc:
        reason = _with_notes(notes, f"transient: {exc.last}")
        return Outcome(
            delivery.id,
            DeliveryStatus.DEFERRED,
            attempts_made[0],
            reason,
            error_kind="transient",
            reply_code=getattr(exc.last, "code", None),
        )
    except SendError as exc:
        if exc.kind is SendErrorKind.ENGINE:
            if lane.error is None:
                log.warning(
                    "run %s: engine %s leaves the rotation: %s", ctx.run.id, lane.engine.name, exc
                )
            lane.error = str(exc)
            if not notes:
                return None
            # the first, ambiguous attempt may have gone out: never back to pending
            status = DeliveryStatus.UNKNOWN
        else:
            status = (
                DeliveryStatus.UNKNOWN
                if exc.kind is SendErrorKind.AMBIGUOUS
                else DeliveryStatus.FAILED
            )
        reason = _with_notes(notes, f"{exc.kind}: {exc}")
        return Outcome(
            delivery.id,
            status,
            attempts_made[0],
            reason,
            error_kind=str(exc.kind),
            reply_code=exc.code,
        )
    return Outcome(
        delivery.id,
        DeliveryStatus.SENT,
        attempts_made[0],
        reason=_with_notes(notes, None),
        message_id=result.message_id,
        provider_message_id=result.provider_message_id or None,
        latency_ms=result.latency_ms,
    )


def _record(ctx: _Context, outcomes: list[Outcome], unstarted: list[int]) -> None:
    """One transaction per batch: every outcome, and the deliveries that were not started.

    Deliberate: a crash before this commit leaves the batch's sent messages `sending`, which
    the next executor marks `unknown` and does not resend (at most one batch).
    """
    now = utcnow()
    with ctx.ws.db.begin() as conn:
        deliveries.record_outcomes(
            conn,
            [
                {
                    "delivery_id": o.delivery_id,
                    "target": o.status,
                    "attempts": o.attempts,
                    "reason": o.reason,
                    "message_id": o.message_id,
                    "provider_message_id": o.provider_message_id,
                    "error_kind": o.error_kind,
                    "reply_code": o.reply_code,
                    "latency_ms": o.latency_ms,
                }
                for o in outcomes
            ],
            now=now,
        )
        if unstarted:
            deliveries.release_unstarted(conn, unstarted, now=now)


def _skip_recently_sent(
    conn: Connection, ctx: _Context, batch: list[Delivery]
) -> list[Delivery] | None:
    """Never twice: claimed deliveries this workflow already sent to inside its dedupe window
    (another run, e.g. a double click on send-now) are skipped. None when the batch was empty."""
    if not batch:
        return None
    window = ctx.run.options.dedupe_window_hours
    if window <= 0:
        return batch
    now = utcnow()
    keys = [d.email_normalized for d in batch if d.email_normalized]
    dupes = deliveries.recently_sent(
        conn,
        workflow_id=ctx.run.workflow_id,
        run_id=ctx.run.id,
        keys=keys,
        since=now - timedelta(hours=window),
    )
    if not dupes:
        return batch
    reason = f"sent_recently: this workflow sent to it within {window:g} h"
    deliveries.record_outcomes(
        conn,
        [
            {"delivery_id": d.id, "target": DeliveryStatus.SKIPPED, "attempts": 0, "reason": reason}
            for d in batch
            if d.email_normalized in dupes
        ],
        now=now,
    )
    return [d for d in batch if d.email_normalized not in dupes]


def _claim_batch(
    conn: Connection, ctx: _Context
) -> tuple[str | None, list[tuple[Delivery, EngineLane]]]:
    """Claim the next batch and give each delivery its engine, in the caller's transaction.

    Daily quotas are re-read from the ledger here, under a lock on the engines, and the batch's
    engines are written before the lock is released: executors in other processes that share an
    engine take its quota in turn, and the batch is never larger than the quota left. So the
    ledger never counts more than the quota per UTC day; a send counts from the moment it is
    claimed, and an `unknown` one keeps counting (it may have gone out). Returns (why the run stops, []) when it cannot go on: `engine` (no engine
    left), `quota` (every quota used, rows still pending) or `done`.
    """
    now = utcnow()
    # only engines with a daily quota need the lock and the count
    counted = [lane.engine.id for lane in ctx.lanes if lane.engine.limits.daily_quota]
    engines.lock_engines(conn, counted)
    used = deliveries.engine_usage(conn, counted, since=utc_day_start(now))
    for lane in ctx.lanes:
        lane.used_today = used.get(lane.engine.id, 0)
    slots = [lane.slot() for lane in ctx.lanes]
    if all(slot.error is not None for slot in slots):
        ctx.stop_reason = engine_error_reason(slots)
        return "engine", []
    room = capacity(slots)
    if room == 0:
        if not deliveries.has_pending(conn, ctx.run.id):
            return "done", []
        resume_at = next_utc_midnight(now)
        ctx.stop_reason = quota_pause_reason(slots, resume_at=resume_at)
        return "quota", []
    size = ctx.run.options.batch_size if room is None else min(ctx.run.options.batch_size, room)
    batch = deliveries.claim_pending(conn, ctx.run.id, worker_id=ctx.worker_id, limit=size, now=now)
    batch = _skip_recently_sent(conn, ctx, batch)
    if batch is None:
        return "done", []
    batch = suppressions.skip_suppressed(conn, batch, now=now)  # suppressed since the freeze
    chosen = assign_engines(slots, len(batch))
    deliveries.assign_engines(
        conn, {d.id: engine_id for d, engine_id in zip(batch, chosen, strict=True)}, now=now
    )
    lanes = {lane.engine.id: lane for lane in ctx.lanes}
    return None, [(d, lanes[engine_id]) for d, engine_id in zip(batch, chosen, strict=True)]


def _domain_of(delivery: Delivery) -> str:
    return (delivery.email_normalized or delivery.email).rpartition("@")[2]


_NO_LIMIT = nullcontext()


async def _send_batches(ctx: _Context, stop: StopSignal, lost: asyncio.Event) -> str:
    """Claim and send batches until done; returns why it stopped: done, stop, time, status,
    engine (no engine left), quota (every engine's daily quota used) or auto (auto-pause)."""
    opts = ctx.run.options
    limit = asyncio.Semaphore(opts.concurrency)

    async def guarded(delivery: Delivery, lane: EngineLane) -> Outcome | None:
        # A saturated recipient domain waits here, holding no concurrency slot and no token,
        # so the batch's other domains go on meanwhile.
        if lane.domains is not None:
            await lane.domains.acquire(_domain_of(delivery))
        async with limit, lane.slots or _NO_LIMIT:
            if lane.error or lost.is_set():
                return None
            outcome = await _deliver(ctx, lane, delivery)
        if outcome is not None and outcome.status is DeliveryStatus.SENT:
            lane.sent += 1
        return outcome

    limit_s = None if opts.time_limit_minutes is None else opts.time_limit_minutes * 60
    while True:
        if stop.is_set() or lost.is_set():
            return "stop"
        with ctx.ws.db.begin() as conn:
            current = runs.get_run(conn, ctx.run.id)
            started = current.started_at or current.created_at
            if limit_s is not None and (utcnow() - started).total_seconds() > limit_s:
                return "time"
            if current.status is not RunStatus.SENDING or (
                ctx.owner and current.worker_id != ctx.worker_id
            ):
                return "status"
            if not _window_open(ctx.window, opts.timezone):
                return "window"
            ctx.stop_reason = compliance.complaint_brake_any(
                conn, [lane.engine.id for lane in ctx.lanes]
            )
            if ctx.stop_reason:
                return "auto"
            why, batch = _claim_batch(conn, ctx)
        if why == "done":
            # the owner ends the run only once assisting daemons have recorded their batches
            if ctx.owner and not _others_done(ctx):
                await asyncio.sleep(ASSIST_POLL_S)
                continue
            return "done"
        if why is not None:
            return why
        results = await asyncio.gather(*(guarded(d, lane) for d, lane in batch))
        outcomes = [r for r in results if r is not None]
        done = {o.delivery_id for o in outcomes}
        _record(ctx, outcomes, [d.id for d, _ in batch if d.id not in done])
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
            return "auto"


async def _domain_verdicts(ws: Workspace, run: Run) -> dict[str, DomainResult] | None:
    """The DNS step of the pre-flight, before freezing; None when skipped or already frozen."""
    if run.options.skip_mx:
        return None
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
    return await preflight.audience_domain_verdicts(ws, audience_id)


async def _open_lanes(
    ws: Workspace,
    stack: AsyncExitStack,
    engine_list: list[Engine],
    urls: dict[int, str],
    *,
    concurrency: int,
) -> list[EngineLane]:
    """Open a sender per engine; one that cannot be opened joins with its error (out of
    rotation), so the run goes on through the others."""
    lanes = []
    for position, engine in enumerate(engine_list):
        pool = min(concurrency, engine.limits.max_concurrency or concurrency)
        sender: Sender | None = None
        error = None
        try:
            sender = await stack.enter_async_context(
                open_sender(crypto.decrypt(ws.fernet, urls[engine.id]), concurrency=pool)
            )
        except SendError as exc:
            error = str(exc)
            log.warning("engine %s cannot be opened: %s", engine.name, exc)
        lane = EngineLane.for_engine(engine, position, sender)
        lane.error = error
        lanes.append(lane)
    return lanes


async def _open_context(
    ws: Workspace,
    stack: AsyncExitStack,
    run: Run,
    *,
    worker_id: str,
    owner: bool,
    window: SendWindow | None,
) -> _Context:
    """What a worker sends a run with: its template version, a lane per engine of the
    workflow (senders opened on `stack`) and its parsed send window, for the owner of the run
    or an assisting worker."""
    with ws.db.connect() as conn:
        engine_ids = workflows.get_workflow(conn, run.workflow_id).engine_ids
        engine_list = [engines.get_engine(conn, engine_id) for engine_id in engine_ids]
        urls = {e.id: engines.get_encrypted_url(conn, e.id) for e in engine_list}
        version = templates.get_version(conn, run.template_version_id or 0)
    template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    lanes = await _open_lanes(ws, stack, engine_list, urls, concurrency=run.options.concurrency)
    return _Context(
        ws=ws,
        run=run,
        worker_id=worker_id,
        template=template,
        lanes=lanes,
        bucket=TokenBucket(run.options.rate, run.options.burst),
        unsubscribe=unsubscribe_links(ws, run.options),
        mailto=mailto_links(ws, run.options),
        owner=owner,
        window=window,
    )


async def execute(ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal) -> Run:
    """Drive a run this worker holds (INITIALIZING or SENDING) as far as it can go.

    The run sends through every engine its workflow lists when execution starts (also on a
    resume): the list is read here rather than frozen at queue time, so an engine added to a
    workflow whose quotas ran out takes over the remaining rows when the run continues.
    """
    if run.status is RunStatus.INITIALIZING and not freeze_audience(
        ws, run, domains=await _domain_verdicts(ws, run)
    ):
        with ws.db.connect() as conn:
            return runs.get_run(conn, run.id)
    with ws.db.connect() as conn:
        run = runs.get_run(conn, run.id)
    window = _send_window(run.options)
    lost = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ws, run.id, worker_id, lost))
    try:
        async with AsyncExitStack() as stack:
            ctx = await _open_context(
                ws, stack, run, worker_id=worker_id, owner=True, window=window
            )
            why = await _send_batches(ctx, stop, lost)
            reason = ctx.stop_reason
    except SendError as exc:  # an engine failed while closing
        why, reason = "engine", f"engine error: {exc}"
    finally:
        beat.cancel()
    finished = _finish(ws, run.id, worker_id=worker_id, why=why, reason=reason, window=window)
    if finished.status in FINAL_RUN_STATES or finished.status is RunStatus.PAUSED:
        run_report.mail_run_report(ws, run.id)
    return finished


def _finish(
    ws: Workspace,
    run_id: int,
    *,
    worker_id: str,
    why: str,
    reason: str | None,
    window: SendWindow | None,
) -> Run:
    now = utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if why == "time" and run.status is RunStatus.SENDING:
            limit = run.options.time_limit_minutes
            left = deliveries.skip_pending(
                conn, run_id, reason=f"time_limit: the run's {limit:g} min were up", now=now
            )
            runs.set_run_status(
                conn,
                run_id,
                expected=RunStatus.SENDING,
                target=RunStatus.COMPLETED,
                now=now,
                reason=f"time limit of {limit:g} min reached; {left} recipients left unsent",
            )
        elif why == "done" and run.status is RunStatus.SENDING:
            runs.set_run_status(
                conn, run_id, expected=RunStatus.SENDING, target=RunStatus.COMPLETED, now=now
            )
        elif why == "quota" and run.status is RunStatus.SENDING:
            resume_at = next_utc_midnight(now)
            runs.pause_until(conn, run_id, resume_at=resume_at, reason=reason or "", now=now)
            log.info("run %s: %s", run_id, reason)
        elif why in ("engine", "auto") and run.status is RunStatus.SENDING:
            runs.set_run_status(
                conn,
                run_id,
                expected=RunStatus.SENDING,
                target=RunStatus.PAUSED,
                now=now,
                reason=reason,
            )
            runs.release_run(conn, run_id, worker_id=worker_id)
        elif why == "window" and window is not None and run.status is RunStatus.SENDING:
            runs.pause_until(
                conn,
                run_id,
                resume_at=cadence.next_window_open(window, run.options.timezone, now),
                reason=f"outside the send window {window} {run.options.timezone}",
                now=now,
            )
        elif why == "status" and run.status is RunStatus.PAUSED:
            runs.release_run(conn, run_id, worker_id=worker_id)  # paused by a user: resumable
            log.info("run %s: paused; resumable with `resume %s`", run_id, run_id)
        elif why == "stop":
            runs.release_run(conn, run_id, worker_id=worker_id)
            log.info("run %s: stopped on request; resumable with `resume %s`", run_id, run_id)
        return runs.get_run(conn, run_id)


def run_to_end(ws: Workspace, run_id: int, *, worker_id: str, stop: StopSignal) -> Run:
    """Acquire a run and execute it in this thread's own event loop."""
    run = acquire_run(ws, run_id, worker_id=worker_id)
    return asyncio.run(execute(ws, run, worker_id=worker_id, stop=stop))


def resume_due(ws: Workspace, run_id: int, *, worker_id: str, now: datetime) -> Run | None:
    """Take a PAUSED run whose `resume_at` is at or before `now` back to SENDING for this worker; None
    when another executor was first or the run is no longer due (a user's pause has no
    `resume_at` and is never resumed here)."""
    with ws.db.begin() as conn:
        clock = utcnow()
        if not runs.resume_due_run(conn, run_id, worker_id=worker_id, due_at=now, now=clock):
            return None
        deliveries.mark_in_flight_unknown(conn, run_id, now=clock)
        return runs.get_run(conn, run_id)


def work_once(
    ws: Workspace, *, worker_id: str, stop: StopSignal, now: datetime | None = None
) -> list[Run]:
    """One pass of a daemon: adopt orphaned runs, resume runs paused until a time that has
    passed (`now`, default the clock: e.g. daily quotas renewed), then execute queued runs
    until none is left."""
    done: list[Run] = []
    with ws.db.connect() as conn:
        orphans = runs.orphaned_runs(conn, heartbeat_before=utcnow() - STALE_AFTER)
    for orphan in orphans:
        if stop.is_set():
            return done
        try:
            run = take_over(ws, orphan.id, worker_id=worker_id)
        except RunBusy:
            continue
        done.append(asyncio.run(execute(ws, run, worker_id=worker_id, stop=stop)))
    due_at = now or utcnow()
    with ws.db.connect() as conn:
        due = runs.due_paused_runs(conn, now=due_at)
    for paused in due:
        if stop.is_set():
            return done
        resumed = resume_due(ws, paused.id, worker_id=worker_id, now=due_at)
        if resumed is None:
            continue
        log.info(
            "run %s: resumed by %s (was paused until %s)", paused.id, worker_id, paused.resume_at
        )
        done.append(asyncio.run(execute(ws, resumed, worker_id=worker_id, stop=stop)))
    while not stop.is_set():
        with ws.db.begin() as conn:
            run = runs.claim_next_run(conn, worker_id=worker_id, now=utcnow())
        if run is None:
            break
        log.info("run %s: claimed by %s", run.id, worker_id)
        done.append(asyncio.run(execute(ws, run, worker_id=worker_id, stop=stop)))
    return done


# --- several workers on one run -------------------------------------------------------------

#: how often a run's owner looks again for batches other workers still hold
ASSIST_POLL_S = 0.5
#: a daemon silent this long no longer holds its claimed deliveries
DAEMON_STALE_AFTER = timedelta(seconds=30)


def _send_window(options: SendOptions) -> SendWindow | None:
    """The run's send window parsed, or None when it may send at any hour."""
    return cadence.parse_window(options.send_window) if options.send_window else None


def _window_open(window: SendWindow | None, timezone: str) -> bool:
    return window is None or cadence.window_is_open(window, timezone, utcnow())


def _others_done(ctx: _Context) -> bool:
    """Whether no other worker holds deliveries of the run; a dead one's become `unknown`."""
    now = utcnow()
    with ctx.ws.db.begin() as conn:
        others = deliveries.in_flight_claimants(conn, ctx.run.id, besides=ctx.worker_id)
        waiting = False
        for worker in others:
            daemon = daemons.get_daemon(conn, worker) if worker else None
            if daemon and daemon.is_alive(now=now, stale_after=DAEMON_STALE_AFTER):
                waiting = True
                continue
            lost = deliveries.mark_claimed_unknown(conn, ctx.run.id, claimed_by=worker, now=now)
            log.warning("run %s: %s deliveries of gone worker %s marked unknown, not resent",
                        ctx.run.id, lost, worker)  # fmt: skip
    return not waiting


async def assist(ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal) -> str:
    """Help send a SENDING run that another live worker owns: claim batches (SKIP LOCKED on
    PostgreSQL) through the same batch loop, never change the run's state. The owner finishes
    the run (counts, report) once no delivery is pending or held. Returns why it stopped."""
    async with AsyncExitStack() as stack:
        ctx = await _open_context(
            ws, stack, run, worker_id=worker_id, owner=False, window=_send_window(run.options)
        )
        if all(lane.error is not None for lane in ctx.lanes):  # the owner carries on alone
            log.warning("run %s: cannot assist: no engine opens here", run.id)
            return "engine"
        return await _send_batches(ctx, stop, asyncio.Event())


def assist_runs(ws: Workspace, *, worker_id: str, stop: StopSignal) -> list[int]:
    """Join every SENDING run held by another live daemon; the ids of the runs helped.

    Deliberate: a run sent in the foreground by `send` or by the dashboard is left to its own
    executor, so its rate stays the one the user gave.
    """
    now = utcnow()
    with ws.db.connect() as conn:
        sending = [
            r
            for r in runs.active_runs(conn)
            if r.status is RunStatus.SENDING
            and r.worker_id not in (None, worker_id)
            and daemons.get_daemon(conn, r.worker_id or "") is not None
        ]
    helped = []
    for run in sending:
        if stop.is_set():
            break
        if not holder_is_alive(run, now=now):
            continue
        why = asyncio.run(assist(ws, run, worker_id=worker_id, stop=stop))
        log.info("run %s: assisted by %s until %s", run.id, worker_id, why)
        helped.append(run.id)
    return helped


def adopt_dead_holders_runs(ws: Workspace, *, worker_id: str, stop: StopSignal) -> list[Run]:
    """Take over and finish active runs whose holder is known dead before its heartbeat goes
    stale (a process on this host that no longer exists); `work_once` covers stale ones."""
    now = utcnow()
    with ws.db.connect() as conn:
        candidates = [
            r
            for r in runs.active_runs(conn)
            if r.worker_id not in (None, worker_id) and not holder_is_alive(r, now=now)
        ]
    done = []
    for run in candidates:
        if stop.is_set():
            break
        try:
            taken = take_over(ws, run.id, worker_id=worker_id)
        except RunBusy:
            continue
        done.append(asyncio.run(execute(ws, taken, worker_id=worker_id, stop=stop)))
    return done
