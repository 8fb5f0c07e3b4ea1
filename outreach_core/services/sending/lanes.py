"""Engine lanes: each engine of a run opened for sending, with the limits it holds here."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from outreach_core.adapters.senders import Sender
from outreach_core.domain.engine_rotation import EngineSlot
from outreach_core.domain.models import Engine
from outreach_core.domain.ratelimit import DomainWindow, TokenBucket


@dataclass
class EngineLane:
    """One engine opened for a run: its sender and the limits it holds for this process.

    The token bucket comes from the engine's rate and burst (no rate: unlimited; no burst:
    one second's worth); the semaphore from its max_concurrency; the domain window from its
    per-recipient-domain rate. The run's own bucket and concurrency apply on top of these, so
    the tighter of the two holds.
    """

    engine: Engine
    position: int
    sender: Sender | None
    bucket: TokenBucket
    #: None when the engine sets no max_concurrency (the run's own limit applies alone)
    slots: asyncio.Semaphore | None
    domains: DomainWindow | None
    error: str | None = None
    used_today: int = 0
    #: sends this process handed to the engine during the run (for logs and tests)
    sent: int = 0

    @classmethod
    def for_engine(cls, engine: Engine, position: int, sender: Sender | None) -> EngineLane:
        limits = engine.limits
        rate = limits.rate_per_second or 0.0
        burst = limits.burst or max(1, math.ceil(rate))
        return cls(
            engine=engine,
            position=position,
            sender=sender,
            bucket=TokenBucket(rate, burst),
            slots=asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None,
            domains=(
                DomainWindow(limits.per_domain_per_minute) if limits.per_domain_per_minute else None
            ),
        )

    def slot(self) -> EngineSlot:
        """This engine as rotation sees it."""
        return EngineSlot(
            engine_id=self.engine.id,
            name=self.engine.name,
            position=self.position,
            daily_quota=self.engine.limits.daily_quota,
            used_today=self.used_today,
            error=self.error,
        )
