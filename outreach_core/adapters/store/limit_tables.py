"""The tables of the limits every sending process shares: rate states and concurrency leases.
Same metadata as `tables`, which exports them; `shared_limits` holds their queries."""

from __future__ import annotations

import sqlalchemy as sa

from outreach_core.adapters.store.columns import UTCDateTime, metadata

#: one row per shared rate limit: an engine's rate ("engine 3"), one of its recipient domains
#: ("engine 3 domain example.com") or a run's own rate ("run 12"); `domain/gcra.py` decides
rate_limit_states = sa.Table(
    "rate_limit_states",
    metadata,
    sa.Column("bucket", sa.String(300), primary_key=True),
    # the theoretical arrival time, in seconds since the epoch on the database's clock: the
    # bucket is full again once the clock passes it. A row whose tat is long past says no more
    # than a missing row, so old rows are pruned
    sa.Column("tat", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: an engine's concurrency slots (0 .. max_concurrency - 1), each free or leased to one sending
#: process until `expires_at`; a live holder renews its leases, a killed one's lapse
engine_leases = sa.Table(
    "engine_leases",
    metadata,
    sa.Column(
        "engine_id",
        sa.Integer,
        sa.ForeignKey("engines.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    # "<worker id>/<lane>"; NULL when free
    sa.Column("holder", sa.String(200)),
    # seconds since the epoch on the database's clock (like `rate_limit_states.tat`)
    sa.Column("expires_at", sa.Float),
)
