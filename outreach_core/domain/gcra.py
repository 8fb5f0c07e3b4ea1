"""Rate limits shared by every process: the GCRA arithmetic on one stored number.

A limit of `rate` per second with `burst` is kept as a single value, the theoretical arrival
time `tat` (seconds on one clock): the moment the bucket would be full again if nothing more
were taken. Taking n tokens at `now` is allowed while `max(tat, now) + n/rate - burst/rate <= now`
and moves `tat` on by n/rate. So the state is one row per limit, advanced in one short locked
step by whichever process asks (`adapters/store/shared_limits.py`), and the decision is this
pure function. Over any interval of length W the tokens granted never exceed
`burst + rate * W`, however many processes ask and however they split their takes: many small
takes add up to exactly one big one.

Deliberate: the clock is the database's (PostgreSQL's `clock_timestamp()`; on SQLite, one
machine, the local clock), never each machine's own. A machine whose clock ran ahead would
otherwise find the bucket full on every take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: float rounding slack, in seconds: times since the epoch are exact to about 0.25 us, so
#: waiting exactly the time a token needs must find it there (or a take could spin)
_EPS_S = 1e-6


@dataclass(frozen=True)
class Grant:
    """What one take got: `granted` tokens (0..wanted), the new `tat` to store, and, when
    nothing was granted, the seconds until the tokens asked for (at most `burst`) are free."""

    granted: int
    tat: float
    wait: float = 0.0


def take(tat: float | None, *, now: float, rate: float, burst: int, wanted: int) -> Grant:
    """Take up to `wanted` tokens from the limit whose stored state is `tat` (None: never
    used, a full bucket). Grants as many as are free now (a partial grant rather than none);
    with none free, says how long until min(wanted, burst) are.

    Rate 0 (or less) is no limit: everything is granted and the state does not move.
    A `tat` further ahead than a full burst can only come from a clock that went backwards:
    it is read as an empty bucket (nothing free, the next token one interval away) rather
    than locking the limit out for as long as the clock jumped; the grant's `tat` is then
    that clamped state, to be stored even though nothing was granted.
    """
    if wanted < 1:
        raise ValueError(f"take {wanted} tokens: ask for at least 1")
    if rate <= 0:
        return Grant(wanted, tat if tat is not None else now)
    burst = max(1, burst)
    interval = 1.0 / rate
    # how far the state is ahead of now, worked out as a difference first: the epoch times
    # themselves are too large for their sum with an interval to be exact
    ahead = 0.0 if tat is None else min(max(tat - now, 0.0), burst * interval)
    free = math.floor((burst * interval - ahead + _EPS_S) * rate)
    granted = max(0, min(wanted, free))
    if granted:
        return Grant(granted, now + ahead + granted * interval)
    need = min(wanted, burst)
    wait = ahead + need * interval - burst * interval
    return Grant(0, now + ahead, wait=max(wait, _EPS_S))


def domain_pace(per_minute: int) -> tuple[float, int]:
    """(rate per second, burst) of a per-recipient-domain limit of `per_minute`.

    Deliberate: burst 1, evenly spaced (one every 60/per_minute s). It is the only GCRA
    setting that keeps "at most per_minute in any 60 s" exact at the full long-run rate: a
    larger burst would allow up to per_minute + burst - 1 in some minute.
    """
    if per_minute < 1:
        raise ValueError(f"per-domain rate {per_minute}: give at least 1 per minute")
    return per_minute / 60.0, 1


def default_burst(rate: float) -> int:
    """An engine's burst when it sets none: a tenth of a second's worth, at least 1.

    Small on purpose: a provider's "N per second" is measured over short windows, and with
    several processes sending the burst is shared too, so over any 10 s the engine sees at
    most 10 * rate + rate / 10.
    """
    return max(1, math.ceil(rate / 10))


def take_size(rate: float, burst: int, *, waiting: int, cap: int = 10) -> int:
    """How many tokens one process asks for at a time: what its waiting sends need, at most
    the burst, `cap`, or a tenth of a second's worth (at least 1). Small batches keep the
    database asked a few times a second rather than per message, while a token is never
    held long before it is spent."""
    tenth = max(1, math.ceil(rate / 10)) if rate > 0 else cap
    return max(1, min(waiting, burst, cap, tenth))
