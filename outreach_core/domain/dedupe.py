"""Never twice: which other run of a workflow holds an address, and the skip reason naming it.

A run's claim skips an address another run of its workflow sent to (or may have: `unknown`)
inside the dedupe window, or is sending right now. The ledger keeps which run it was, so a
user reading a skipped row can open the run that mailed the recipient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from outreach_core.domain.states import SkipReason

#: the reason word of a delivery skipped because another run of its workflow holds the address
SENT_RECENTLY = SkipReason.SENT_RECENTLY.value


@dataclass(frozen=True)
class Taken:
    """Another run of the workflow holding an address: it sent it inside the window (or its
    outcome is unknown), or it is sending it now (`sending`)."""

    run_id: int
    sending: bool


def taken_by(rows: Iterable[tuple[str, int, bool]]) -> dict[str, Taken]:
    """One holder per address from (address, run id, sending now) rows.

    A run that already sent is named before one still sending (it is the surer answer), and
    among equals the earliest run, so the same ledger always gives the same reason.
    """
    holders: dict[str, Taken] = {}
    for key, run_id, sending in rows:
        candidate = Taken(run_id=run_id, sending=sending)
        current = holders.get(key)
        if current is None or (candidate.sending, candidate.run_id) < (
            current.sending,
            current.run_id,
        ):
            holders[key] = candidate
    return holders


def sent_recently_reason(taken: Taken, *, window_hours: float) -> str:
    """The skip reason of a delivery whose address `taken` holds."""
    if taken.sending:
        return f"{SENT_RECENTLY}: run {taken.run_id} of this workflow is sending it now"
    return (
        f"{SENT_RECENTLY}: run {taken.run_id} of this workflow sent to it within {window_hours:g} h"
    )
