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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.errors import MessageError

from sqlalchemy.engine import Connection
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from outreach_core import crypto, dryrun, run_report
from outreach_core.deliverability import DomainResult
from outreach_core.errors import RunBusy, SendError, SendErrorKind, TemplateError
from outreach_core.message import Outgoing, build_message
from outreach_core.message import Sender as FromAddress
from outreach_core.models import (
    ACTIVE_RUN_STATES,
    FINAL_RUN_STATES,
    Delivery,
    DeliveryStatus,
    Run,
    RunStatus,
    SendOptions,
)
from outreach_core.planning import (
    SenderIdentity,
    mark_suppressed,
    plan_deliveries,
    render_abort_reason,
    render_context,
)
from outreach_core.ratelimit import TokenBucket
from outreach_core.retry import (
    AUTO_PAUSE_WINDOW,
    RetryPolicy,
    backoff_seconds,
    should_auto_pause,
    should_retry,
    tenacity_wait,
)
from outreach_core.senders import Sender, open_sender
from outreach_core.senders.base import SendResult
from outreach_core.store import (
    audiences,
    deliveries,
    engines,
    runs,
    suppressions,
    templates,
    workflows,
)
from outreach_core.templating import CompiledTemplate, TemplateSource
from outreach_core.unsubscribe import UnsubscribeLinks, list_unsubscribe_headers
from outreach_core.workspace import Workspace, utcnow

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
        unknown = deliveries.mark_in_flight_unknown(conn, run_id, now=now)
        if unknown:
            log.warning(
                "run %s: %s in-flight deliveries marked unknown, not resent", run_id, unknown
            )
        return runs.get_run(conn, run_id)


def unsubscribe_links(ws: Workspace, options: SendOptions) -> UnsubscribeLinks | None:
    """The run's `unsubscribe_url` maker, when its options name a base URL."""
    if not options.unsubscribe_base_url:
        return None
    secret = crypto.load_secret(ws.settings.secret_key, ws.settings.data_dir)
    return UnsubscribeLinks(options.unsubscribe_base_url, crypto.derived_key(secret, "unsubscribe"))


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
            runs.set_run_status(
                conn,
                run.id,
                expected=RunStatus.INITIALIZING,
                target=RunStatus.FAILED,
                now=now,
                reason=f"template {version.name} v{version.version}: {exc}",
            )
            return False
        plan = list(
            plan_deliveries(
                audiences.iter_rows(conn, audience.id),
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
            runs.set_run_status(
                conn,
                run.id,
                expected=RunStatus.INITIALIZING,
                target=RunStatus.FAILED,
                now=now,
                reason=abort,
            )
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
                    "engine_id": run.engine_id,
                    "updated_at": now,
                }
                for p in plan
            ),
        )
        runs.set_run_status(
            conn, run.id, expected=RunStatus.INITIALIZING, target=RunStatus.SENDING, now=now
        )
    return True


@dataclass
class _Context:
    ws: Workspace
    run: Run
    worker_id: str
    template: CompiledTemplate
    sender_identity: SenderIdentity
    sender: Sender
    bucket: TokenBucket
    unsubscribe: UnsubscribeLinks | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    engine_error: str | None = None
    #: True per recent attempted send that did not end `sent` (for auto-pause)
    recent_failures: list[bool] = field(default_factory=list)


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
    """The same per-recipient link as the template's `unsubscribe_url`, plus the mailto."""
    url = ctx.unsubscribe(delivery.email) if ctx.unsubscribe else None
    return list_unsubscribe_headers(mailto=ctx.run.options.unsubscribe_mailto, url=url)


async def _send_with_retries(ctx: _Context, outgoing: Outgoing, attempts: list[int]) -> SendResult:
    """Send; a TRANSIENT failure is retried (tenacity, the retry policy's waits) up to the run's
    attempt limit. The first try runs without tenacity: it is the common case and the cheap one.
    """

    async def once() -> SendResult:
        attempts[0] += 1
        await ctx.bucket.acquire()
        started = time.perf_counter()
        result = await ctx.sender.send(outgoing)
        return replace(result, latency_ms=round((time.perf_counter() - started) * 1000))

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


class _Exhausted(Exception):
    """Every allowed attempt failed transiently; carries the last error."""

    def __init__(self, last: BaseException | None) -> None:
        super().__init__(str(last))
        self.last = last


async def _deliver(ctx: _Context, delivery: Delivery) -> Outcome | None:
    """Send one claimed delivery; its outcome, or None when the engine failed before sending
    (the delivery then goes back to pending and the run pauses)."""
    attempts_made = [0]
    try:
        rendered = ctx.template.render(
            render_context(
                delivery.variables,
                email=delivery.email,
                sender=ctx.sender_identity,
                run_date=ctx.run.created_at,
                unsubscribe=ctx.unsubscribe,
            )
        )
        outgoing = build_message(
            rendered,
            sender=FromAddress(ctx.sender_identity.email, ctx.sender_identity.name),
            recipient=delivery.email,
            delivery_id=delivery.id,
            now=utcnow(),
            extra_headers=_unsubscribe_headers(ctx, delivery),
        )
        result = await _send_with_retries(ctx, outgoing, attempts_made)
    except TemplateError as exc:
        return Outcome(delivery.id, DeliveryStatus.FAILED, attempts_made[0], f"render_error: {exc}")
    except (ValueError, MessageError) as exc:  # the message could not be built for this row
        reason = f"message_error: {type(exc).__name__}: {exc}"
        return Outcome(delivery.id, DeliveryStatus.FAILED, attempts_made[0], reason)
    except _Exhausted as exc:
        reason = f"transient: {exc.last}"
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
            ctx.engine_error = str(exc)
            return None
        status = (
            DeliveryStatus.UNKNOWN if exc.kind is SendErrorKind.AMBIGUOUS else DeliveryStatus.FAILED
        )
        return Outcome(
            delivery.id,
            status,
            attempts_made[0],
            f"{exc.kind}: {exc}",
            error_kind=str(exc.kind),
            reply_code=exc.code,
        )
    return Outcome(
        delivery.id,
        DeliveryStatus.SENT,
        attempts_made[0],
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


async def _send_batches(ctx: _Context, stop: StopSignal, lost: asyncio.Event) -> str:
    """Claim and send batches until done; returns why it stopped: done, stop, engine, status."""
    opts = ctx.run.options
    limit = asyncio.Semaphore(opts.concurrency)

    async def guarded(delivery: Delivery) -> Outcome | None:
        async with limit:
            if ctx.engine_error or lost.is_set():
                return None
            return await _deliver(ctx, delivery)

    limit_s = None if opts.time_limit_minutes is None else opts.time_limit_minutes * 60
    while True:
        if stop.is_set() or lost.is_set():
            return "stop"
        with ctx.ws.db.begin() as conn:
            current = runs.get_run(conn, ctx.run.id)
            started = current.started_at or current.created_at
            if limit_s is not None and (utcnow() - started).total_seconds() > limit_s:
                return "time"
            if current.status is not RunStatus.SENDING or current.worker_id != ctx.worker_id:
                return "status"
            batch = deliveries.claim_pending(
                conn, ctx.run.id, worker_id=ctx.worker_id, limit=opts.batch_size, now=utcnow()
            )
            batch = _skip_recently_sent(conn, ctx, batch)
        if batch is None:
            return "done"
        results = await asyncio.gather(*(guarded(d) for d in batch))
        outcomes = [r for r in results if r is not None]
        done = {o.delivery_id for o in outcomes}
        _record(ctx, outcomes, [d.id for d in batch if d.id not in done])
        if ctx.engine_error:
            return "engine"
        ctx.recent_failures.extend(
            o.status is not DeliveryStatus.SENT for o in outcomes if o.attempts > 0
        )
        del ctx.recent_failures[:-AUTO_PAUSE_WINDOW]
        if should_auto_pause(ctx.recent_failures, opts.auto_pause_failure_rate):
            failed = sum(ctx.recent_failures)
            ctx.engine_error = (
                f"auto-pause: {failed} of the last {len(ctx.recent_failures)} sends failed "
                f"(threshold {opts.auto_pause_failure_rate:.0%})"
            )
            return "engine"


async def _domain_verdicts(ws: Workspace, run: Run) -> dict[str, DomainResult] | None:
    """The DNS step of the pre-flight, before freezing; None when skipped or already frozen."""
    if run.options.skip_mx:
        return None
    with ws.db.connect() as conn:
        if deliveries.has_deliveries(conn, run.id):
            return None
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
    return await dryrun.audience_domain_verdicts(ws, audience_id)


async def execute(ws: Workspace, run: Run, *, worker_id: str, stop: StopSignal) -> Run:
    """Drive a run this worker holds (INITIALIZING or SENDING) as far as it can go."""
    if run.status is RunStatus.INITIALIZING and not freeze_audience(
        ws, run, domains=await _domain_verdicts(ws, run)
    ):
        with ws.db.connect() as conn:
            return runs.get_run(conn, run.id)
    with ws.db.connect() as conn:
        run = runs.get_run(conn, run.id)
        engine = engines.get_engine(conn, run.engine_id or 0)
        encrypted = engines.get_encrypted_url(conn, engine.id)
        version = templates.get_version(conn, run.template_version_id or 0)
    template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    lost = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ws, run.id, worker_id, lost))
    try:
        async with open_sender(
            crypto.decrypt(ws.fernet, encrypted), concurrency=run.options.concurrency
        ) as sender:
            ctx = _Context(
                ws=ws,
                run=run,
                worker_id=worker_id,
                template=template,
                sender_identity=SenderIdentity(engine.from_email, engine.from_name),
                sender=sender,
                bucket=TokenBucket(run.options.rate, run.options.burst),
                unsubscribe=unsubscribe_links(ws, run.options),
            )
            why = await _send_batches(ctx, stop, lost)
    except SendError as exc:  # the engine could not even be opened
        why, ctx_error = "engine", str(exc)
    else:
        ctx_error = ctx.engine_error
    finally:
        beat.cancel()
    finished = _finish(ws, run.id, worker_id=worker_id, why=why, engine_error=ctx_error)
    if finished.status in FINAL_RUN_STATES or finished.status is RunStatus.PAUSED:
        run_report.mail_run_report(ws, run.id)
    return finished


def _finish(
    ws: Workspace, run_id: int, *, worker_id: str, why: str, engine_error: str | None
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
        elif why == "engine" and run.status is RunStatus.SENDING:
            runs.set_run_status(
                conn,
                run_id,
                expected=RunStatus.SENDING,
                target=RunStatus.PAUSED,
                now=now,
                reason=(
                    engine_error
                    if (engine_error or "").startswith("auto-pause")
                    else f"engine error: {engine_error}"
                ),
            )
            runs.release_run(conn, run_id, worker_id=worker_id)
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


def work_once(ws: Workspace, *, worker_id: str, stop: StopSignal) -> list[Run]:
    """One pass of a daemon: adopt orphaned runs, then execute queued runs until none is left."""
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
    while not stop.is_set():
        with ws.db.begin() as conn:
            run = runs.claim_next_run(conn, worker_id=worker_id, now=utcnow())
        if run is None:
            break
        log.info("run %s: claimed by %s", run.id, worker_id)
        done.append(asyncio.run(execute(ws, run, worker_id=worker_id, stop=stop)))
    return done
