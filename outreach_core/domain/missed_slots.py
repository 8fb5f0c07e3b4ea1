"""Slots a schedule passed without an on-time run: the policy for them, and what it did.

Kept apart from `cadence` (which decides them, in `decide_due`) so each stays small; `cadence`
re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["MissedAction", "MissedSlotPolicy", "MissedSlots"]


class MissedSlotPolicy(StrEnum):
    """What a daemon does with slots that passed while no daemon ran."""

    #: run nothing for them; wait for the next future slot (the default)
    SKIP = "skip"
    #: run once, late, if the latest missed slot is within `late_window_hours`
    RUN_LATE = "run_late"


class MissedAction(StrEnum):
    """What the policy did with the slots a daemon missed."""

    #: none of them ran
    SKIPPED = "skipped"
    #: the latest of them ran, late (run-late policy); the older ones did not
    CAUGHT_UP = "caught_up"


@dataclass(frozen=True)
class MissedSlots:
    """The slots that passed without an on-time run, and what the policy did with them."""

    #: every missed slot, oldest first, in UTC
    slots: tuple[datetime, ...]
    policy: MissedSlotPolicy
    action: MissedAction

    @property
    def caught_up(self) -> datetime | None:
        """The slot that ran late (always the latest), or None."""
        return self.slots[-1] if self.action is MissedAction.CAUGHT_UP else None

    def action_of(self, slot: datetime) -> MissedAction:
        """What happened to one slot: only the caught-up one ran, every other was skipped."""
        return MissedAction.CAUGHT_UP if slot == self.caught_up else MissedAction.SKIPPED
