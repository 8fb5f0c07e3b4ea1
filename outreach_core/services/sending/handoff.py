"""The hand-off point: each delivery marked in flight, committed, right before its message goes
to the engine.

A batch is claimed in one transaction and sent `concurrency` messages at a time. So that a
crash makes `unknown` only what may have gone out, each message is marked (`handed_at`, and the
Message-ID it carries, which a resend reuses) in a short transaction of its own just before the
engine call; that transaction also records the outcomes that ended since the previous hand-off,
and the batch's record writes the rest. So at any moment the deliveries handed over but not
recorded are those in flight at the last hand-off: at most the run's concurrency. The claimed
deliveries never handed go back to pending after a crash (`in_flight.settle`).

Deliberate: the transaction runs on the event loop without awaiting, so no other send starts or
ends meanwhile (the bound above relies on it). It is one UPDATE by primary key, plus the one or
two outcomes that ended since the last hand-off.
"""

from __future__ import annotations

from outreach_core.adapters.store import deliveries, in_flight
from outreach_core.domain.message import Outgoing
from outreach_core.services.sending.context import RunContext


class NotHanded(Exception):
    """The delivery is no longer this worker's `sending` row (a take-over settled it): its
    message was not handed over, and must not be."""


def hand_off(ctx: RunContext, outgoing: Outgoing) -> None:
    """Mark the delivery handed to its engine, with its message's Message-ID, and record the
    outcomes that ended meanwhile; committed when this returns. Raises NotHanded when the
    delivery is no longer this worker's."""
    ended, ctx.unrecorded = ctx.unrecorded, []
    try:
        with ctx.ws.db.begin() as conn:
            now = ctx.clock()
            deliveries.record_outcomes(conn, ended, now=now)
            handed = in_flight.mark_handed(
                conn,
                outgoing.delivery_id,
                worker_id=ctx.worker_id,
                message_id=outgoing.message_id,
                now=now,
            )
    except BaseException:
        ctx.unrecorded[:0] = ended  # not written: the batch's record writes them
        raise
    if not handed:
        raise NotHanded(f"delivery {outgoing.delivery_id} is no longer {ctx.worker_id}'s")
