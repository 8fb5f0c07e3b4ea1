"""One claimed delivery sent: rendered, handed to its engine with retries, and its outcome.

A TRANSIENT failure is retried quickly up to the run's attempt limit on its first send, then
`deferred` with its next scheduled attempt (`domain/retry.py: plan_deferred`; once on each
scheduled retry), or `failed` as expired when its retry lifetime is up; an AMBIGUOUS
one is `unknown` (it may have gone out) unless the workflow allows exactly one more attempt;
an ENGINE failure before anything may have gone out puts the delivery back to pending and
takes the engine out of the rotation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.errors import MessageError
from typing import Any

from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt

from outreach_core.adapters.senders.base import SendResult
from outreach_core.domain.message import Outgoing, build_message
from outreach_core.domain.message import Sender as FromAddress
from outreach_core.domain.models import Delivery
from outreach_core.domain.planning import SenderIdentity, render_context
from outreach_core.domain.retry import (
    backoff_seconds,
    expired_reason,
    plan_deferred,
    should_retry,
    tenacity_wait,
)
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.unsubscribe_links import list_unsubscribe_headers
from outreach_core.errors import SendError, SendErrorKind, TemplateError
from outreach_core.services.sending.context import RunContext
from outreach_core.services.sending.handoff import NotHanded
from outreach_core.services.sending.lanes import EngineLane

log = logging.getLogger("outreach.executor")


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
    #: when this delivery's attempt ended (the engine answered, or rendering failed), read
    #: from the run's clock: the ledger's `sent_at`/`updated_at` are per message, not per batch
    ended_at: datetime | None = None
    #: a deferral's first transient failure and its next scheduled attempt
    deferred_since: datetime | None = None
    next_attempt_at: datetime | None = None
    #: a transient failure's last reply and the wait its provider asked for (not recorded as
    #: such: they decide the schedule and the reason of an expiry)
    last_reply: str | None = None
    retry_after: float | None = None

    def as_row(self) -> dict[str, Any]:
        """The outcome as the ledger records it (`deliveries.record_outcome`'s keys)."""
        return {
            "delivery_id": self.delivery_id,
            "target": self.status,
            "attempts": self.attempts,
            "reason": self.reason,
            "message_id": self.message_id,
            "provider_message_id": self.provider_message_id,
            "error_kind": self.error_kind,
            "reply_code": self.reply_code,
            "latency_ms": self.latency_ms,
            "ended_at": self.ended_at,
            "deferred_since": self.deferred_since,
            "next_attempt_at": self.next_attempt_at,
        }


def _unsubscribe_headers(ctx: RunContext, delivery: Delivery) -> dict[str, str]:
    """The same per-recipient link as the template's `unsubscribe_url`, plus the per-recipient
    mailto."""
    url = ctx.unsubscribe(delivery.email) if ctx.unsubscribe else None
    mailto = ctx.mailto(delivery.email) if ctx.mailto else None
    return list_unsubscribe_headers(mailto=mailto, url=url)


async def _send_once(ctx: RunContext, lane: EngineLane, outgoing: Outgoing) -> SendResult:
    """One attempt through the lane's engine, after the run's and the engine's token buckets."""
    assert lane.sender is not None  # a lane without a sender has an error and gets no sends
    await ctx.bucket.acquire()
    await lane.bucket.acquire()
    await ctx.handoffs.hand_off(outgoing)  # committed before the engine sees a byte
    started = time.perf_counter()
    result = await lane.sender.send(outgoing)
    return replace(result, latency_ms=round((time.perf_counter() - started) * 1000))


async def _send_with_retries(
    ctx: RunContext, lane: EngineLane, outgoing: Outgoing, attempts: list[int], tries: int
) -> SendResult:
    """Send; a TRANSIENT failure is retried (tenacity, the retry policy's waits) up to `tries`
    attempts. The first try runs without tenacity: it is the common case and the cheap one.
    """

    async def once() -> SendResult:
        attempts[0] += 1
        return await _send_once(ctx, lane, outgoing)

    try:
        return await once()
    except SendError as exc:
        if not should_retry(exc) or tries <= 1:
            if should_retry(exc):
                raise _Exhausted(exc) from None
            raise
        first_wait = backoff_seconds(ctx.retry_policy, exc, 1)
    await asyncio.sleep(first_wait)
    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(should_retry),
            wait=tenacity_wait(ctx.retry_policy, offset=1),
            stop=stop_after_attempt(tries - 1),
        ):
            with attempt:
                result = await once()
    except RetryError as exc:
        raise _Exhausted(exc.last_attempt.exception()) from None
    return result


async def _send_with_ambiguous_retry(
    ctx: RunContext,
    lane: EngineLane,
    outgoing: Outgoing,
    attempts: list[int],
    notes: list[str],
    tries: int,
) -> SendResult:
    """`_send_with_retries`, plus exactly one more attempt after an AMBIGUOUS failure when the
    run's options allow it (`retry_ambiguous_once`); `notes` then says so for the ledger.

    Deliberate: the extra attempt may duplicate a message that did go out; that is the risk
    the workflow opted into. Without the option an ambiguous send is never retried.
    """
    try:
        return await _send_with_retries(ctx, lane, outgoing, attempts, tries)
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


async def deliver(ctx: RunContext, lane: EngineLane, delivery: Delivery) -> Outcome | None:
    """Send one claimed delivery through the lane's engine; its outcome, or None when the
    engine failed before anything may have gone out (the delivery then goes back to pending
    and the engine leaves the rotation).

    The outcome carries the run clock's time right when the attempt ended: nothing awaits
    between the engine's answer and this read, so it is the message's own send time even
    though it is recorded later (with a hand-off or the batch).
    """
    outcome = await _attempt(ctx, lane, delivery)
    if outcome is None:
        return None
    outcome = replace(outcome, ended_at=ctx.clock())
    return _scheduled(ctx, delivery, outcome)


def _scheduled(ctx: RunContext, delivery: Delivery, outcome: Outcome) -> Outcome:
    """A deferral given its next attempt, or failed as expired when its lifetime is up (no
    scheduled retries when the workflow's lifetime is 0: it waits for a person's retry); a
    retried delivery that went out says what it had met before."""
    if outcome.status is DeliveryStatus.SENT and delivery.deferred_since:
        before = f"sent on a scheduled retry; before: {delivery.reason or 'deferred'}"
        return replace(outcome, reason=_with_notes([before], outcome.reason))
    hours = ctx.run.options.retry_lifetime_hours
    if outcome.status is not DeliveryStatus.DEFERRED or hours <= 0 or outcome.ended_at is None:
        return outcome
    plan = plan_deferred(
        attempts=delivery.attempts + outcome.attempts,
        quick_attempts=ctx.run.options.max_attempts,
        deferred_since=delivery.deferred_since,
        failed_at=outcome.ended_at,
        lifetime=timedelta(hours=hours),
        retry_after=outcome.retry_after,
    )
    if plan.next_attempt_at is None:
        reason = expired_reason(hours, outcome.last_reply or outcome.reason or "")
        return replace(
            outcome, status=DeliveryStatus.FAILED, reason=reason, deferred_since=plan.deferred_since
        )
    return replace(
        outcome, deferred_since=plan.deferred_since, next_attempt_at=plan.next_attempt_at
    )


async def _attempt(ctx: RunContext, lane: EngineLane, delivery: Delivery) -> Outcome | None:
    """`deliver` without the end time."""
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
        headers = _unsubscribe_headers(ctx, delivery)
        thread = ctx.threads.get(delivery.id)
        if thread is not None:  # a follow-up continuing its recipient's thread
            headers = {**thread.headers, **headers}
            rendered = replace(rendered, subject=thread.subject or rendered.subject)
        outgoing = build_message(
            rendered,
            sender=FromAddress(identity.email, identity.name),
            recipient=delivery.email,
            delivery_id=delivery.id,
            now=ctx.clock(),
            extra_headers=headers,
            message_id=delivery.message_id,  # a resend keeps the Message-ID it went out with
        )
        # quick tries on the first send only: a deferred one is retried on its schedule
        tries = 1 if delivery.deferred_since else ctx.run.options.max_attempts
        result = await _send_with_ambiguous_retry(ctx, lane, outgoing, attempts_made, notes, tries)
    except NotHanded:
        return None  # a take-over settled it meanwhile: nothing went out, nothing to record
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
            last_reply=str(exc.last),
            retry_after=getattr(exc.last, "retry_after", None),
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
