"""The schedule of a deferred delivery's retries: MTA-like waits, Retry-After, the lifetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outreach_core.domain.retry import (
    deferred_delay,
    expired_reason,
    next_attempt_at,
    plan_deferred,
)

T0 = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    "retries_made, minutes",
    [(0, 1), (1, 5), (2, 15), (3, 30), (4, 60), (5, 60), (40, 60)],
)
def test_waits_grow_like_a_mail_servers_then_stay_hourly(retries_made: int, minutes: int) -> None:
    """Verify 1, 5, 15, 30 minutes after the first deferrals, then an hour each time."""
    assert deferred_delay(retries_made) == timedelta(minutes=minutes)


def test_the_next_attempt_counts_only_the_attempts_after_the_quick_tries() -> None:
    """Verify the 3 quick tries of the first send give the first wait (1 min), and each
    scheduled attempt after them moves one step along the schedule."""
    at = [next_attempt_at(n, quick_attempts=3, failed_at=T0) - T0 for n in range(3, 9)]
    assert at == [timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 60)]
    # fewer attempts than quick tries (an ambiguous one ended the first send): still 1 min
    assert next_attempt_at(1, quick_attempts=3, failed_at=T0) == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    "retry_after, wait",
    [
        (None, timedelta(minutes=5)),
        (30.0, timedelta(minutes=5)),  # shorter than the schedule: the schedule wins
        (300.0, timedelta(minutes=5)),
        (1800.0, timedelta(minutes=30)),  # the provider asked for longer: honoured
    ],
)
def test_a_providers_retry_after_is_honoured_when_larger(
    retry_after: float | None, wait: timedelta
) -> None:
    """Verify Retry-After moves the next attempt only later, never earlier."""
    got = next_attempt_at(4, quick_attempts=3, failed_at=T0, retry_after=retry_after)
    assert got == T0 + wait


def test_the_first_deferral_starts_the_lifetime() -> None:
    """Verify a first transient failure is deferred since now, retried after a minute."""
    plan = plan_deferred(
        attempts=3, quick_attempts=3, deferred_since=None, failed_at=T0, lifetime=DAY
    )
    assert (plan.deferred_since, plan.next_attempt_at) == (T0, T0 + timedelta(minutes=1))


def test_a_later_deferral_keeps_its_start_and_the_last_attempt_falls_on_the_lifetime() -> None:
    """Verify a retry planned past the lifetime is brought forward to exactly its end, and a
    failure at (or after) the end expires the delivery."""
    failed = T0 + DAY - timedelta(minutes=20)
    plan = plan_deferred(
        attempts=30, quick_attempts=3, deferred_since=T0, failed_at=failed, lifetime=DAY
    )
    assert (plan.deferred_since, plan.next_attempt_at) == (T0, T0 + DAY)
    for late in (T0 + DAY, T0 + DAY + timedelta(hours=3)):
        ended = plan_deferred(
            attempts=31, quick_attempts=3, deferred_since=T0, failed_at=late, lifetime=DAY
        )
        assert (ended.deferred_since, ended.next_attempt_at) == (T0, None)


def test_retry_after_beyond_the_lifetime_still_leaves_one_last_attempt() -> None:
    """Verify a Retry-After longer than the time left ends at the lifetime, not after it."""
    plan = plan_deferred(
        attempts=5,
        quick_attempts=3,
        deferred_since=T0,
        failed_at=T0 + timedelta(hours=2),
        lifetime=timedelta(hours=3),
        retry_after=7200.0,
    )
    assert plan.next_attempt_at == T0 + timedelta(hours=3)


def test_the_expiry_reason_names_the_lifetime_and_the_last_reply() -> None:
    """Verify the reason says how long 4xx lasted and what the server said last."""
    assert (
        expired_reason(24.0, "451 4.7.1 try later") == "expired: 4xx for 24 h: 451 4.7.1 try later"
    )
    assert expired_reason(1.5, "421 busy") == "expired: 4xx for 1.5 h: 421 busy"
