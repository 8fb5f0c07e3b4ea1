"""Engine lanes: each engine of a run opened for sending, with the limits it shares."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine as Database

from outreach_core.adapters.senders import Sender
from outreach_core.domain import gcra
from outreach_core.domain.engine_rotation import EngineSlot
from outreach_core.domain.models import Engine
from outreach_core.services.sending.shared_limits import SharedBucket, SharedDomains, SharedSlots


@dataclass
class EngineLane:
    """One engine opened for a run: its sender and its limits, shared with every process that
    sends through the engine (`shared_limits`).

    The bucket comes from the engine's rate and burst (no rate: unlimited, never asking the
    database; no burst: a tenth of a second's worth, `gcra.default_burst`); the slots from its
    max_concurrency; the domain pace from its per-recipient-domain rate. The run's own bucket
    (shared by the workers of the run) and its concurrency (per worker) apply on top of these,
    so the tighter holds.
    """

    engine: Engine
    position: int
    sender: Sender | None
    bucket: SharedBucket
    #: None when the engine sets no max_concurrency (the run's own limit applies alone)
    slots: SharedSlots | None
    domains: SharedDomains | None
    error: str | None = None
    used_today: int = 0
    #: sends this process handed to the engine during the run (for logs and tests)
    sent: int = 0

    @classmethod
    def for_engine(
        cls, engine: Engine, position: int, sender: Sender | None, *, db: Database, holder: str
    ) -> EngineLane:
        """The lane of `engine`, its limits kept in `db`; `holder` names this worker's
        concurrency leases."""
        limits = engine.limits
        rate = limits.rate_per_second or 0.0
        burst = limits.burst or gcra.default_burst(rate)
        per_domain = limits.per_domain_per_minute
        return cls(
            engine=engine,
            position=position,
            sender=sender,
            bucket=SharedBucket(db, f"engine {engine.id}", rate, burst),
            slots=(
                SharedSlots(db, engine.id, limits.max_concurrency, holder=holder)
                if limits.max_concurrency
                else None
            ),
            domains=SharedDomains(db, engine.id, per_domain) if per_domain else None,
        )

    async def release_idle(self) -> None:
        """Give back the concurrency leases no send uses now (between batches)."""
        if self.slots is not None:
            await self.slots.release_idle()

    async def close(self) -> None:
        """Give back every concurrency lease (the run is over for this worker)."""
        if self.slots is not None:
            await self.slots.close()

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
