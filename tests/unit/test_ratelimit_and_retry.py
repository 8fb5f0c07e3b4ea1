"""The token bucket on an injected clock, and the retry policy's backoff decisions."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from outreach_core.domain.ratelimit import TokenBucket
from outreach_core.domain.retry import RetryPolicy, backoff_seconds, should_retry
from outreach_core.errors import SendError, SendErrorKind
from tests.fake_clock import FakeClock


def take_all(bucket: TokenBucket, count: int, fake: FakeClock) -> list[float]:
    """Acquire `count` tokens one after another; the clock reading after each."""

    async def go() -> list[float]:
        stamps = []
        for _ in range(count):
            await bucket.acquire()
            stamps.append(fake.now)
        return stamps

    return asyncio.run(go())


def test_rate_20_burst_5_spaces_200_sends_over_at_least_9_75_seconds() -> None:
    """Verify 200 sends at 20/s with burst 5 take >= 9.75 s of clock: 5 at once, then 1 per 50 ms."""
    fake = FakeClock()
    bucket = TokenBucket(20, 5, clock=fake.clock, sleep=fake.sleep)

    stamps = take_all(bucket, 200, fake)

    assert stamps[4] == 0.0  # the burst goes out at once
    assert stamps[5] > 0.0
    assert stamps[-1] >= 9.75 - 1e-9
    assert stamps[-1] == pytest.approx(9.75, abs=1e-6)  # and no slower than the rate allows
    gaps = [b - a for a, b in itertools.pairwise(stamps[5:])]
    assert min(gaps) == pytest.approx(0.05, abs=1e-9)


def test_in_any_one_second_window_at_most_rate_plus_burst_sends_start() -> None:
    """Verify no 1 s window of clock time holds more than rate + burst sends."""
    fake = FakeClock()
    stamps = take_all(TokenBucket(20, 5, clock=fake.clock, sleep=fake.sleep), 200, fake)
    for start in stamps:
        assert sum(1 for t in stamps if start <= t < start + 1.0) <= 25


def test_a_pause_refills_the_bucket_only_up_to_the_burst() -> None:
    """Verify after 10 s idle only `burst` tokens are free, not 200."""
    fake = FakeClock()
    bucket = TokenBucket(20, 5, clock=fake.clock, sleep=fake.sleep)
    take_all(bucket, 5, fake)
    fake.now += 10.0
    assert [bucket.try_take() for _ in range(5)] == [0.0] * 5
    assert bucket.try_take() == pytest.approx(0.05)


def test_rate_zero_never_waits() -> None:
    """Verify rate 0 means unlimited: no sleeps at all."""
    fake = FakeClock()
    take_all(TokenBucket(0, 1, clock=fake.clock, sleep=fake.sleep), 1000, fake)
    assert fake.sleeps == [] and fake.now == 0.0


def transient(retry_after: float | None = None) -> SendError:
    return SendError("x", kind=SendErrorKind.TRANSIENT, retry_after=retry_after)


POLICY = RetryPolicy(base=0.5, cap=30.0)


@pytest.mark.parametrize(
    ("exc", "attempts", "expected"),
    [
        (transient(), 1, 0.5),  # first retry: up to base
        (transient(), 2, 1.0),  # doubles
        (transient(), 4, 4.0),
        (transient(), 20, 30.0),  # capped
        (transient(retry_after=7.0), 1, 7.0),  # the provider's wait wins over backoff
        (transient(retry_after=900.0), 1, 30.0),  # but never beyond the cap
        (transient(retry_after=0.0), 3, 0.0),  # a reset already past: go now
    ],
)
def test_backoff_is_full_jitter_or_the_providers_wait(
    exc: SendError, attempts: int, expected: float
) -> None:
    """Verify the wait is uniform(0, min(cap, base*2^(n-1))) unless the provider named one."""
    upper = backoff_seconds(POLICY, exc, attempts, uniform=lambda lo, hi: hi)
    lower = backoff_seconds(POLICY, exc, attempts, uniform=lambda lo, hi: lo)
    assert upper == pytest.approx(expected)
    if exc.retry_after is None:
        assert lower == 0.0
    else:
        assert lower == upper


@pytest.mark.parametrize(
    ("kind", "retried"),
    [
        (SendErrorKind.TRANSIENT, True),
        (SendErrorKind.AMBIGUOUS, False),  # may have been delivered: at-most-once
        (SendErrorKind.PERMANENT, False),
        (SendErrorKind.ENGINE, False),  # the run pauses instead
    ],
)
def test_only_transient_errors_are_retried(kind: SendErrorKind, retried: bool) -> None:
    """Verify the retry predicate follows the four classes."""
    assert should_retry(SendError("x", kind=kind)) is retried
    assert should_retry(ValueError("x")) is False


@pytest.mark.parametrize(
    ("failures", "total", "threshold", "paused"),
    [
        (10, 50, 0.2, False),  # exactly 20 %: not more than the threshold
        (11, 50, 0.2, True),
        (40, 49, 0.2, False),  # window not full yet: no decision on a handful of sends
        (50, 50, 0.0, False),  # 0 turns it off
        (26, 50, 0.5, True),
    ],
)
def test_auto_pause_needs_a_full_window_and_more_than_the_threshold(
    failures: int, total: int, threshold: float, paused: bool
) -> None:
    """Verify the auto-pause rule over the last 50 sends."""
    from outreach_core.domain.retry import should_auto_pause

    recent = [True] * failures + [False] * (total - failures)
    assert should_auto_pause(recent, threshold) is paused
