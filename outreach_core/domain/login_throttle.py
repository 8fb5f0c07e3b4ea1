"""Sign-in throttling: after repeated failures, further attempts for that user name or from
that client are refused for a delay that doubles with each further failure.

`retry_after` is the policy (pure, `now` passed in); `LoginThrottle` keeps the failures of
one dashboard process in memory (a restart forgets them) and applies the policy before the
password is checked, so a throttled attempt is refused even with the right password.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from outreach_core.domain.access import Account, User, authenticate


@dataclass(frozen=True)
class ThrottleLimit:
    """How many failures a key may have within `window_s` before attempts wait."""

    failures: int
    window_s: float = 900.0
    #: the wait after the `failures`-th failure; each further failure doubles it
    first_delay_s: float = 60.0
    max_delay_s: float = 3600.0


#: per user name: 5 failures in 15 minutes, then a wait of 1, 2, 4 ... minutes
USER_LIMIT = ThrottleLimit(failures=5)
#: per client address: higher, as colleagues behind one NAT or proxy share an address
CLIENT_LIMIT = ThrottleLimit(failures=20)
#: failures kept per key (older ones no longer change the decision)
_KEPT = 64


def retry_after(failures: Sequence[float], now: float, limit: ThrottleLimit) -> float:
    """Seconds to wait before the next attempt (0: try now), given the times of past failures."""
    recent = sorted(t for t in failures if now - limit.window_s < t <= now)
    if len(recent) < limit.failures:
        return 0.0
    delay = min(limit.first_delay_s * 2 ** (len(recent) - limit.failures), limit.max_delay_s)
    return max(0.0, recent[-1] + delay - now)


@dataclass(frozen=True)
class LoginResult:
    """A sign-in attempt's outcome: the user, or None with the wait when it was throttled."""

    user: User | None
    retry_after_s: float = 0.0

    @property
    def throttled(self) -> bool:
        return self.retry_after_s > 0

    def message(self) -> str:
        """What the sign-in form says when the attempt did not let the user in."""
        if self.throttled:
            wait = math.ceil(self.retry_after_s)
            unit = "second" if wait == 1 else "seconds"
            return (
                "Too many failed sign-ins for this user name or from this address. "
                f"Wait {wait} {unit}, then try again."
            )
        return "The user name or the password is wrong."


class LoginThrottle:
    """Failed sign-ins of this process by user name and by client, behind a lock (every
    browser session runs in its own thread). `clock` is injectable for tests."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        user_limit: ThrottleLimit = USER_LIMIT,
        client_limit: ThrottleLimit = CLIENT_LIMIT,
        max_keys: int = 10_000,
    ) -> None:
        self._clock = clock
        self._limits = {"user": user_limit, "client": client_limit}
        self._max_keys = max_keys
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, name: str, client: str) -> list[tuple[str, str]]:
        # Names that are not accounts are counted too, so the throttle tells nothing either.
        return [("user", name.strip()[:100]), ("client", client)]

    def wait(self, name: str, client: str) -> float:
        """Seconds before `name` may try again from `client` (0: now)."""
        now = self._clock()
        with self._lock:
            return max(
                retry_after(self._failures.get(key, ()), now, self._limits[key[0]])
                for key in self._keys(name, client)
            )

    def attempt(
        self, accounts: dict[str, Account], name: str, password: str, client: str
    ) -> LoginResult:
        """Check the password unless the user name or the client must wait; count a failure,
        and clear the user name's failures on success (the client's stay, so one good
        account cannot reset the count of guesses at others)."""
        wait = self.wait(name, client)
        if wait > 0:
            return LoginResult(None, wait)
        user = authenticate(accounts, name, password)
        now = self._clock()
        with self._lock:
            if user is not None:
                self._failures.pop(self._keys(name, client)[0], None)
                return LoginResult(user)
            for key in self._keys(name, client):
                self._failures.setdefault(key, []).append(now)
                del self._failures[key][:-_KEPT]
            self._forget_old(now)
        return LoginResult(None)

    def _forget_old(self, now: float) -> None:
        """Bound the memory: drop keys with no failure left in their window, then the oldest."""
        if len(self._failures) <= self._max_keys:
            return
        for key, times in list(self._failures.items()):
            if not times or now - times[-1] >= self._limits[key[0]].window_s:
                del self._failures[key]
        for key in sorted(self._failures, key=lambda k: self._failures[k][-1]):
            if len(self._failures) <= self._max_keys:
                break
            del self._failures[key]
