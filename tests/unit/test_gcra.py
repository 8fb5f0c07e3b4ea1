"""The shared rate limit's arithmetic (`domain/gcra.py`) on a stored `tat`, with no server."""

from __future__ import annotations

import random

import pytest

from outreach_core.domain import gcra
from outreach_core.domain.gcra import Grant


def drain(rate: float, burst: int, *, ask: int, until: float, step: float) -> list[float]:
    """Take `ask` at a time every `step` seconds from 0 to `until`; the time of each token."""
    tat, now, stamps = None, 0.0, []
    while now < until:
        grant = gcra.take(tat, now=now, rate=rate, burst=burst, wanted=ask)
        tat = grant.tat
        stamps += [now] * grant.granted
        now += step
    return stamps


def test_an_unused_limit_grants_its_whole_burst_at_once() -> None:
    """Verify a limit never used (no row) grants the burst at once and no more."""
    assert gcra.take(None, now=100.0, rate=20, burst=5, wanted=5) == Grant(5, 100.25)
    assert gcra.take(None, now=100.0, rate=20, burst=5, wanted=9).granted == 5


def test_an_empty_bucket_grants_nothing_and_says_how_long_until_the_tokens_asked_for() -> None:
    """Verify with the burst spent nothing is granted, the state does not move, and the wait is
    the time until min(wanted, burst) tokens are free."""
    spent = gcra.take(None, now=0.0, rate=20, burst=5, wanted=5)
    empty = gcra.take(spent.tat, now=0.0, rate=20, burst=5, wanted=1)
    assert (empty.granted, empty.tat) == (0, spent.tat)
    assert empty.wait == pytest.approx(0.05)
    assert gcra.take(spent.tat, now=0.0, rate=20, burst=5, wanted=3).wait == pytest.approx(0.15)
    assert gcra.take(spent.tat, now=0.0, rate=20, burst=5, wanted=50).wait == pytest.approx(0.25)


def test_a_partial_grant_beats_none() -> None:
    """Verify 2 free of 4 asked: 2 granted now, not 0."""
    spent = gcra.take(None, now=0.0, rate=10, burst=4, wanted=4)
    later = gcra.take(spent.tat, now=0.2, rate=10, burst=4, wanted=4)
    assert later.granted == 2


def test_an_idle_limit_refills_to_its_burst_and_no_further() -> None:
    """Verify an hour idle refills to the burst, not to an hour's worth."""
    spent = gcra.take(None, now=0.0, rate=20, burst=5, wanted=5)
    assert gcra.take(spent.tat, now=3600.0, rate=20, burst=5, wanted=1000).granted == 5
    assert gcra.take(spent.tat, now=0.1, rate=20, burst=5, wanted=1000).granted == 2


def test_rate_zero_is_no_limit() -> None:
    """Verify rate 0 grants whatever is asked and never waits."""
    assert gcra.take(None, now=5.0, rate=0, burst=1, wanted=10_000) == Grant(10_000, 5.0)
    assert gcra.take(7.0, now=5.0, rate=0, burst=1, wanted=3) == Grant(3, 7.0)


def test_a_clock_that_went_backwards_reads_as_an_empty_bucket_not_a_lockout() -> None:
    """Verify a tat an hour ahead of now (the clock stepped back) grants nothing now, waits
    one interval, and grants once that interval has passed, the clamped state being what is
    stored."""
    far = gcra.take(None, now=3600.0, rate=20, burst=5, wanted=5).tat
    back = gcra.take(far, now=0.0, rate=20, burst=5, wanted=1)
    assert (back.granted, back.tat) == (0, pytest.approx(0.25))  # stored: the clamp holds
    assert back.wait == pytest.approx(0.05)
    assert gcra.take(back.tat, now=0.05, rate=20, burst=5, wanted=9).granted == 1


@pytest.mark.parametrize("ask", [1, 2, 3, 7])
def test_many_small_takes_equal_one_big_take(ask: int) -> None:
    """Verify taking 1, 2, 3 or 7 at a time every 10 ms over 10 s grants the same total, and
    never more than burst + rate * window in any window."""
    stamps = drain(20, 5, ask=ask, until=10.0, step=0.01)
    assert len(stamps) == pytest.approx(5 + 20 * 10, abs=ask)
    for window in (1.0, 2.5, 10.0):
        worst = max(sum(1 for s in stamps if start <= s < start + window) for start in set(stamps))
        assert worst <= 5 + 20 * window


def test_processes_taking_in_turn_at_random_never_beat_the_bound() -> None:
    """Verify three askers at random moments and sizes on one state: over any 1 s or 10 s
    window the grants stay within burst + rate * window."""
    rng = random.Random(7)
    tat, stamps, now = None, [], 0.0
    while now < 20:
        now += rng.uniform(0, 0.03)
        grant = gcra.take(tat, now=now, rate=20, burst=5, wanted=rng.randint(1, 5))
        tat = grant.tat
        stamps += [now] * grant.granted
    for window in (1.0, 10.0):
        worst = max(sum(1 for s in stamps if t <= s < t + window) for t in stamps)
        assert worst <= 5 + 20 * window


def test_domain_pace_keeps_per_minute_in_any_minute() -> None:
    """Verify a per-domain limit of 6/min is evenly spaced, one every 10 s, so no 60 s window
    holds more than 6."""
    rate, burst = gcra.domain_pace(6)
    assert (rate, burst) == (pytest.approx(0.1), 1)
    stamps = drain(rate, burst, ask=1, until=300.0, step=0.5)
    assert stamps[:3] == [0.0, 10.0, 20.0]
    assert max(sum(1 for s in stamps if t <= s < t + 60) for t in stamps) == 6
    with pytest.raises(ValueError, match="at least 1 per minute"):
        gcra.domain_pace(0)


def test_take_size_asks_for_what_waits_within_a_tenth_of_a_second() -> None:
    """Verify a take asks for the sends waiting, at most the burst, 10, or 100 ms worth."""
    assert gcra.take_size(20, 5, waiting=4) == 2
    assert gcra.take_size(1000, 50, waiting=40) == 10
    assert gcra.take_size(1000, 3, waiting=40) == 3
    assert gcra.take_size(1000, 50, waiting=1) == 1
    assert gcra.take_size(0.5, 1, waiting=3) == 1
    assert gcra.default_burst(20) == 2 and gcra.default_burst(2.5) == 1


def test_asking_for_nothing_is_a_mistake() -> None:
    """Verify wanted 0 raises rather than granting nothing silently."""
    with pytest.raises(ValueError, match="at least 1"):
        gcra.take(None, now=0.0, rate=1, burst=1, wanted=0)


@pytest.mark.parametrize(("rate", "burst"), [(20, 1), (1000, 1), (7, 3), (0.5, 1)])
def test_waiting_the_time_said_always_finds_the_token_at_epoch_times(
    rate: float, burst: int
) -> None:
    """Verify on times since the epoch (too large for exact float sums) that after waiting
    the wait a take returns, the next take is granted: never a spin of ever-tiny waits."""
    tat, now, grants, refusals = None, 1_796_470_000.123456, 0, 0
    while grants < 500:
        grant = gcra.take(tat, now=now, rate=rate, burst=burst, wanted=1)
        tat = grant.tat
        if grant.granted:
            grants += 1
        else:
            refusals += 1
            assert grant.wait > 1e-7
            now += grant.wait
    assert refusals <= grants
