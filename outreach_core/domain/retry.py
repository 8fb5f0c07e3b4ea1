"""Retry policy for transient send errors: data plus one pure function.

Wait before attempt n+1 (n = attempts made so far):
    the provider's own wait (Retry-After / X-RateLimit-Reset) when it gave one, capped at `cap`;
    otherwise full jitter: uniform(0, min(cap, base * 2 ** (n - 1))).
Only TRANSIENT errors are retried. AMBIGUOUS ones are not (at-most-once); PERMANENT and
ENGINE never.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

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
