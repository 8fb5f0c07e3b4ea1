"""The hand-off transaction's writes: the outcomes ended since the last one, and the marks of
the deliveries about to go to their engine.

On PostgreSQL both are one statement over arrays (two data-modifying CTEs over `unnest`):
one round trip and one plan for any number of rows, where two `executemany` run a statement
per row. A statement is atomic on its own, so it runs outside an explicit transaction: no
BEGIN nor COMMIT round trip. SQLite writes the two `executemany` in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store import deliveries, in_flight
from outreach_core.domain.states import DeliveryStatus

#: each outcome column, its key in `deliveries.outcome_params` and its PostgreSQL array type
_OUTCOME_ARRAYS = (
    ("id", "b_id", "integer"),
    ("status", "b_status", "varchar"),
    ("reason", "b_reason", "text"),
    ("attempts", "b_attempts", "integer"),
    ("at", "b_now", "timestamptz"),
    ("sent_at", "b_sent_at", "timestamptz"),
    ("message_id", "b_message_id", "varchar"),
    ("provider_message_id", "b_provider_message_id", "varchar"),
    ("error_kind", "b_error_kind", "varchar"),
    ("reply_code", "b_reply_code", "integer"),
    ("latency_ms", "b_latency_ms", "integer"),
    ("deferred_since", "b_deferred_since", "timestamptz"),
    ("next_attempt_at", "b_next_attempt_at", "timestamptz"),
)

_SENDING = f"d.status || '' = '{DeliveryStatus.SENDING.value}'"  # a guard: see status_is

_WRITE_HAND_OFF = sa.text(
    f"""
WITH recorded AS (
    UPDATE deliveries AS d SET
        status = o.status,
        reason = coalesce(o.reason, d.reason),
        attempts = d.attempts + o.attempts,
        updated_at = o.at,
        sent_at = o.sent_at,
        message_id = coalesce(o.message_id, d.message_id),
        provider_message_id = o.provider_message_id,
        error_kind = o.error_kind,
        reply_code = o.reply_code,
        latency_ms = o.latency_ms,
        deferred_since = coalesce(d.deferred_since, o.deferred_since),
        next_attempt_at = o.next_attempt_at
    FROM unnest({", ".join(f"CAST(:o_{name} AS {kind}[])" for name, _, kind in _OUTCOME_ARRAYS)})
        AS o({", ".join(name for name, _, _ in _OUTCOME_ARRAYS)})
    WHERE d.id = o.id AND {_SENDING}
    RETURNING d.id
), handed AS (
    UPDATE deliveries AS d SET handed_at = :h_now, message_id = h.message_id
    FROM unnest(CAST(:h_id AS integer[]), CAST(:h_message_id AS varchar[])) AS h(id, message_id)
    WHERE d.id = h.id AND {_SENDING} AND d.claimed_by = :h_worker
    RETURNING d.id
)
SELECT id FROM handed
"""
)


def write_hand_off(
    conn: Connection,
    outcomes: list[dict[str, Any]],
    marks: list[tuple[int, str]],
    *,
    worker_id: str,
    now: datetime,
) -> set[int]:
    """Record the outcomes (`deliveries.record_outcomes`) and mark the hand-offs
    (`in_flight.mark_handed_many`); the ids of the marks refused. On PostgreSQL the caller
    need not open a transaction: the one statement is its own."""
    if conn.dialect.name != "postgresql":
        deliveries.record_outcomes(conn, outcomes, now=now)
        return in_flight.mark_handed_many(conn, marks, worker_id=worker_id, now=now)
    rows = deliveries.outcome_params(outcomes, now=now)
    params: dict[str, Any] = {
        f"o_{name}": [_plain(row[key]) for row in rows] for name, key, _ in _OUTCOME_ARRAYS
    }
    params |= {
        "h_id": [delivery_id for delivery_id, _ in marks],
        "h_message_id": [message_id for _, message_id in marks],
        "h_now": now,
        "h_worker": worker_id,
    }
    handed = set(conn.execute(_WRITE_HAND_OFF, params).scalars())
    return {delivery_id for delivery_id, _ in marks} - handed


def _plain(value: Any) -> Any:
    """An array element as the driver adapts it: an enum by its value."""
    return value.value if isinstance(value, DeliveryStatus) else value
