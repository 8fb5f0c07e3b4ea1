"""Retry policy for transient send errors: data plus one pure function.

Wait before attempt n+1 (n = attempts made so far):
    the provider's own wait (Retry-After / X-RateLimit-Reset) when it gave one, capped at `cap`;
    otherwise full jitter: uniform(0, min(cap, base * 2 ** (n - 1))).
Only TRANSIENT errors are retried. AMBIGUOUS ones are not (at-most-once); PERMANENT and
ENGINE never.

Those quick tries happen inside one send. When they are used up the delivery is `deferred`
and retried later on a schedule, as a mail server retries a 4xx reply (`plan_deferred`): 1, 5,
15 and 30 minutes after the failures, then hourly, until its lifetime is up; then it fails.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import RetryCallState

from outreach_core.errors import SendError, SendErrorKind


@dataclass(frozen=True)
class RetryPolicy:
    """How patiently a transient failure is retried (the number of tries is a run option)."""

    base: float = 0.5
    cap: float = 30.0


def should_retry(exc: BaseException) -> bool:
    """Only a clearly-unsent failure is worth another attempt."""
    return isinstance(exc, SendError) and exc.kind is SendErrorKind.TRANSIENT


def backoff_seconds(
    policy: RetryPolicy,
    exc: BaseException | None,
    attempts: int,
    *,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """The wait before the next attempt (see the module docstring)."""
    asked = getattr(exc, "retry_after", None)
    if asked is not None:
        return min(float(asked), policy.cap)
    return uniform(0.0, min(policy.cap, policy.base * 2 ** max(0, attempts - 1)))


def tenacity_wait(policy: RetryPolicy, *, offset: int = 0) -> Callable[[RetryCallState], float]:
    """`wait=` for tenacity, applying `backoff_seconds` to the last failure; `offset` counts
    attempts made before tenacity took over."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        return backoff_seconds(policy, exc, state.attempt_number + offset)

    return wait


#: minutes to wait after each failed scheduled attempt of a deferred delivery: MTA-like, short
#: first (greylisting usually lets the second try through after a few minutes), then hourly
DEFERRED_SCHEDULE_MINUTES = (1, 5, 15, 30)
DEFERRED_THEN_EVERY_MINUTES = 60


def deferred_delay(retries_made: int) -> timedelta:
    """The wait after a deferral, from how many scheduled retries were made before it
    (0 for the first deferral): 1, 5, 15, 30 minutes, then an hour each time."""
    if retries_made < len(DEFERRED_SCHEDULE_MINUTES):
        return timedelta(minutes=DEFERRED_SCHEDULE_MINUTES[max(0, retries_made)])
    return timedelta(minutes=DEFERRED_THEN_EVERY_MINUTES)


def next_attempt_at(
    attempts: int, *, quick_attempts: int, failed_at: datetime, retry_after: float | None = None
) -> datetime:
    """When a deferred delivery is tried again, from the attempts made so far (`attempts`, of
    which the first `quick_attempts` were the in-process tries of its first send): the
    schedule's wait, or the provider's Retry-After when that is longer."""
    wait = deferred_delay(attempts - quick_attempts)
    if retry_after is not None and retry_after > wait.total_seconds():
        wait = timedelta(seconds=retry_after)
    return failed_at + wait


@dataclass(frozen=True)
class DeferredPlan:
    """What becomes of a delivery whose attempt failed transiently."""

    #: the first transient failure: the lifetime counts from it
    deferred_since: datetime
    #: when to try again; None when the lifetime is up (the delivery fails as expired)
    next_attempt_at: datetime | None


def plan_deferred(
    *,
    attempts: int,
    quick_attempts: int,
    deferred_since: datetime | None,
    failed_at: datetime,
    lifetime: timedelta,
    retry_after: float | None = None,
) -> DeferredPlan:
    """Retry later or give up. The last attempt is made at the end of the lifetime (a later
    scheduled time is brought forward to it); a failure then, or after, expires the delivery.
    """
    since = deferred_since or failed_at
    ends = since + lifetime
    if failed_at >= ends:
        return DeferredPlan(since, None)
    planned = next_attempt_at(
        attempts, quick_attempts=quick_attempts, failed_at=failed_at, retry_after=retry_after
    )
    return DeferredPlan(since, min(planned, ends))


def expired_reason(lifetime_hours: float, last_reply: str) -> str:
    """The reason of a delivery that failed transiently for its whole lifetime."""
    return f"expired: 4xx for {lifetime_hours:g} h: {last_reply}"


#: how many of the latest sends the auto-pause rule looks at
AUTO_PAUSE_WINDOW = 50


def should_auto_pause(recent_failures: list[bool], threshold: float) -> bool:
    """True when the window is full and more than `threshold` of it failed (0 = never).

    A failure is a send that did not end `sent` (failed, deferred or unknown): a run of those
    usually means the engine or the list is broken, and pausing saves the rest of the list.
    """
    if threshold <= 0 or len(recent_failures) < AUTO_PAUSE_WINDOW:
        return False
    window = recent_failures[-AUTO_PAUSE_WINDOW:]
    return sum(window) / len(window) > threshold
