"""The complaint-rate brake: an engine whose recipients mark too much of its mail as spam
stops sending before the mailbox providers block its domain.

Pure decisions here; the executor checks at each batch boundary (`store.feedback` counts).
"""

from __future__ import annotations

from dataclasses import dataclass

#: sends looked at per engine (the newest)
COMPLAINT_WINDOW = 1000
#: Gmail and Yahoo's bulk-sender guidance: stay below 0.1 % spam complaints
COMPLAINT_THRESHOLD = 0.001
#: how the status reason of a run paused by the brake begins (the executor keeps it as is)
BRAKE_PREFIX = "auto-pause: complaint rate"


@dataclass(frozen=True)
class ComplaintRate:
    """Complaints over an engine's newest sends."""

    engine: str
    sends: int
    complaints: int
    engine_id: int | None = None

    @property
    def rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0

    def __str__(self) -> str:
        return (
            f"engine {self.engine}: {self.complaints} complaints in its last {self.sends} sends "
            f"({self.rate:.2%})"
        )


def over_threshold(rate: ComplaintRate, *, threshold: float = COMPLAINT_THRESHOLD) -> bool:
    """Whether complaints / sends passes the threshold (strictly: exactly 0.1 % is allowed)."""
    return rate.sends > 0 and rate.complaints > threshold * rate.sends


def brake_reason(rate: ComplaintRate, *, threshold: float = COMPLAINT_THRESHOLD) -> str | None:
    """The pause reason when the brake applies, else None."""
    if not over_threshold(rate, threshold=threshold):
        return None
    return (
        f"{BRAKE_PREFIX} of {rate} is above {threshold:.1%}; review the list and the "
        "content, then mark the complaints reviewed on Home before resuming"
    )
