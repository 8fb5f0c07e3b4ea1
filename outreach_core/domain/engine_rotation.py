"""Several engines behind one run: which engine takes the next send, and when quotas renew.

A run sends through every engine of its workflow. Each send goes to the usable engine with
the most daily quota left (an engine without a quota counts as unlimited); among engines that
rank equal (all unlimited, or the same quota left) the one that took the fewest sends today
wins, so engines without a quota share the load instead of the first taking every send; a
remaining tie goes to the engine listed first in the workflow. An engine is unusable once its
quota for the UTC day is used up or once it failed at engine level (bad credentials, provider
quota) during the run.

The decisions here are pure (`choose_engine`, `assign_engines`, the day bounds and the pause
reasons); `services/sending/lanes.py` holds what one engine needs at run time (its sender and
its own limits) and hands rotation an `EngineSlot` per engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class EngineSlot:
    """One engine as rotation sees it: its quota, how much of it today's ledger used, its error."""

    engine_id: int
    name: str
    #: place in the workflow's list; the lower wins a tie
    position: int
    daily_quota: int | None = None
    used_today: int = 0
    #: an engine-level error taken this engine out of rotation for the run
    error: str | None = None

    @property
    def remaining(self) -> int | None:
        """Sends left today; None when the engine has no daily quota."""
        if self.daily_quota is None:
            return None
        return max(0, self.daily_quota - self.used_today)

    @property
    def usable(self) -> bool:
        """In rotation: no engine error and quota left."""
        return self.error is None and (self.remaining is None or self.remaining > 0)


def choose_engine(slots: Sequence[EngineSlot]) -> EngineSlot | None:
    """The usable engine with the most quota left (unlimited first); among equals the one with
    the fewest sends today, then the one first in workflow order; None when no engine is usable.
    """
    usable = [s for s in slots if s.usable]
    if not usable:
        return None
    return min(usable, key=_rank)


def _rank(slot: EngineSlot) -> tuple[float, int, int]:
    """Sort key for `choose_engine`: the lowest ranks first."""
    remaining = math.inf if slot.remaining is None else slot.remaining
    return (-remaining, slot.used_today, slot.position)


def assign_engines(slots: Sequence[EngineSlot], count: int) -> list[int]:
    """Engine ids for the next `count` sends, chosen one after another as each send uses one
    unit of its engine's quota. Shorter than `count` when every quota runs out first."""
    current = list(slots)
    chosen_ids: list[int] = []
    for _ in range(count):
        chosen = choose_engine(current)
        if chosen is None:
            break
        chosen_ids.append(chosen.engine_id)
        current = [
            replace(s, used_today=s.used_today + 1) if s.engine_id == chosen.engine_id else s
            for s in current
        ]
    return chosen_ids


def capacity(slots: Sequence[EngineSlot]) -> int | None:
    """How many sends the usable engines may still take today; None when one is unlimited."""
    total = 0
    for slot in slots:
        if not slot.usable:
            continue
        if slot.remaining is None:
            return None
        total += slot.remaining
    return total


def utc_day_start(now: datetime) -> datetime:
    """Midnight UTC that began the day of `now`: quotas count sends from here."""
    day = now.astimezone(UTC)
    return day.replace(hour=0, minute=0, second=0, microsecond=0)


def next_utc_midnight(now: datetime) -> datetime:
    """When today's quotas renew."""
    return utc_day_start(now) + timedelta(days=1)


def _state(slot: EngineSlot) -> str:
    if slot.error is not None:
        return f"{slot.name}: {slot.error}"
    return f"{slot.name}: {slot.used_today}/{slot.daily_quota}"


def quota_pause_reason(slots: Sequence[EngineSlot], *, resume_at: datetime) -> str:
    """Why a run paused for the day, e.g. "daily quota reached on all engines (a: 250/250,
    b: 250/250); resumes at 2026-11-30 00:00 UTC"."""
    states = ", ".join(_state(s) for s in sorted(slots, key=lambda s: s.position))
    where = "all engines" if len(slots) > 1 else "its engine"
    return f"daily quota reached on {where} ({states}); resumes at {resume_at:%Y-%m-%d %H:%M} UTC"


def engine_error_reason(slots: Sequence[EngineSlot]) -> str:
    """Why a run paused when no engine could send: each engine's error (never a secret, as
    senders word their errors without credentials)."""
    ordered = sorted(slots, key=lambda s: s.position)
    if len(ordered) == 1:
        return f"engine error: {ordered[0].error}"
    states = "; ".join(_state(s) for s in ordered)
    return f"engine error on every engine ({states})"


def assign_preferred(slots: Sequence[EngineSlot], preferred: Sequence[int | None]) -> list[int]:
    """An engine per send, in order: the one `preferred` names (a follow-up's: the engine that
    sent the step before) while it is usable and has quota left, else the rotation's choice
    (`choose_engine`). Shorter than `preferred` when every quota runs out first."""
    current = {slot.engine_id: slot for slot in slots}
    chosen_ids: list[int] = []
    for wanted in preferred:
        slot = current.get(wanted) if wanted is not None else None
        if slot is None or not slot.usable:
            slot = choose_engine(list(current.values()))
        if slot is None:
            break
        chosen_ids.append(slot.engine_id)
        current[slot.engine_id] = replace(slot, used_today=slot.used_today + 1)
    return chosen_ids
