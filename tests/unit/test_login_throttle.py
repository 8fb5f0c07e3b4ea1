"""Sign-in throttling: the policy on a clock moved by hand, and the attempts it refuses."""

from __future__ import annotations

import pytest

from outreach_core.domain.access import Role, User, hash_password, parse_accounts
from outreach_core.domain.login_throttle import (
    USER_LIMIT,
    LoginThrottle,
    ThrottleLimit,
    retry_after,
)


class Clock:
    """Seconds moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def accounts() -> dict:
    return parse_accounts(
        f"ann:sender:{hash_password('ann-right', scheme='scrypt')};"
        f"bob:viewer:{hash_password('bob-right', scheme='scrypt')}"
    )


def test_policy_waits_after_the_limit_and_doubles() -> None:
    """Verify the pure policy: nothing below the limit, then 60 s, 120 s, 240 s, capped; old
    failures outside the window no longer count."""
    limit = ThrottleLimit(failures=3, window_s=900, first_delay_s=60, max_delay_s=200)
    assert retry_after([], 0, limit) == 0
    assert retry_after([0, 1], 2, limit) == 0
    assert retry_after([0, 1, 2], 2, limit) == 60
    assert retry_after([0, 1, 2], 50, limit) == 12
    assert retry_after([0, 1, 2], 62, limit) == 0
    assert retry_after([0, 1, 2, 62], 62, limit) == 120
    assert retry_after([0, 1, 2, 62, 182], 182, limit) == 200  # 240 capped
    assert retry_after([0, 1, 2], 901, limit) == 0  # out of the window
    assert retry_after([5, 1, 3], 3, limit) == 0  # a failure "in the future" is not counted yet


def test_sixth_attempt_is_refused_even_with_the_right_password(accounts: dict) -> None:
    """Verify five wrong passwords for ann: the sixth attempt is refused unchecked, right
    password or not, until the wait is over; then the right password lets her in."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(USER_LIMIT.failures):
        result = throttle.attempt(accounts, "ann", "guess", "10.0.0.9")
        assert result.user is None and not result.throttled
        clock.now += 1
    refused = throttle.attempt(accounts, "ann", "ann-right", "10.0.0.9")
    assert refused.user is None and refused.throttled
    assert "Too many failed sign-ins" in refused.message() and "59 seconds" in refused.message()
    # From another address the user name is throttled just the same.
    assert throttle.attempt(accounts, "ann", "ann-right", "10.0.0.10").throttled
    # Other users are not affected (different name, and the client is under its own limit).
    assert throttle.attempt(accounts, "bob", "bob-right", "10.0.0.9").user == User(
        "bob", Role.VIEWER
    )
    clock.now += 58
    assert throttle.attempt(accounts, "ann", "ann-right", "10.0.0.9").throttled
    clock.now += 1
    assert throttle.attempt(accounts, "ann", "ann-right", "10.0.0.9").user == User(
        "ann", Role.SENDER
    )
    # Success cleared ann's count: one more mistake is not throttled.
    assert not throttle.attempt(accounts, "ann", "guess", "10.0.0.9").throttled


def test_a_wrong_password_after_the_wait_doubles_it(accounts: dict) -> None:
    """Verify the wait grows: after the first wait one more failure means 120 s."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(USER_LIMIT.failures):
        throttle.attempt(accounts, "ann", "guess", "c")
    clock.now += 60
    assert not throttle.attempt(accounts, "ann", "guess", "c").throttled
    assert throttle.wait("ann", "c") == 120


def test_one_client_spraying_names_is_throttled(accounts: dict) -> None:
    """Verify a client trying many user names (each under its own limit) is stopped by the
    per-client limit, unknown names included; another client is not."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for number in range(20):
        assert not throttle.attempt(accounts, f"user{number}", "guess", "10.6.6.6").throttled
    assert throttle.attempt(accounts, "ann", "ann-right", "10.6.6.6").throttled
    assert throttle.attempt(accounts, "ann", "ann-right", "10.1.1.1").user is not None


def test_memory_is_bounded(accounts: dict) -> None:
    """Verify the store keeps at most max_keys keys, dropping the oldest."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_keys=10)
    for number in range(30):
        clock.now += 1
        throttle.attempt(accounts, f"n{number}", "x", f"c{number}")
    assert len(throttle._failures) <= 10
