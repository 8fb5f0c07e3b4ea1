"""Pending deliveries that wait for a DNS answer about their domain (`domain/dns_waits.py`).

They are `pending` with a reason beginning `dns_error: `; a claim leaves them alone
(`claimable`), and the run's owner settles them once their domain has been looked up again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from outreach_core.adapters.store.deliveries import fit_reason
from outreach_core.adapters.store.tables import deliveries
from outreach_core.domain.dns_waits import WAITING_PREFIX, DnsAction, DnsDecision
from outreach_core.domain.states import DeliveryStatus, check_delivery_transition


def _waiting() -> ColumnElement[bool]:
    return deliveries.c.reason.startswith(WAITING_PREFIX, autoescape=True)


def claimable() -> ColumnElement[bool]:
    """Pending deliveries a claim may take: every one but those waiting for DNS."""
    return sa.or_(deliveries.c.reason.is_(None), sa.not_(_waiting()))


def waiting_rows(conn: Connection, run_id: int) -> dict[str, list[tuple[int, str]]]:
    """The run's deliveries waiting for DNS: ASCII domain -> [(delivery id, reason)]."""
    rows = conn.execute(waiting_rows_query(run_id))
    found: dict[str, list[tuple[int, str]]] = {}
    for delivery_id, key, reason in rows:
        found.setdefault(str(key or "").rpartition("@")[2], []).append((delivery_id, reason))
    return found


def waiting_rows_query(run_id: int) -> sa.Select[tuple[int, str | None, str | None]]:
    """The rows of `waiting_rows`, in id order: one range of ix_deliveries_run_status (run_id,
    status, id), read in its order, the reason checked on each row of the range."""
    return (
        sa.select(deliveries.c.id, deliveries.c.email_normalized, deliveries.c.reason)
        .where(
            deliveries.c.run_id == run_id,
            deliveries.c.status == DeliveryStatus.PENDING,
            _waiting(),
        )
        .order_by(deliveries.c.id)
    )


def settle_waiting(
    conn: Connection,
    decisions: Mapping[str, DnsDecision],
    rows: Mapping[str, list[tuple[int, str]]],
    *,
    now: datetime,
) -> int:
    """Apply each domain's decision to its waiting rows (`rows`, from `waiting_rows`), those
    still pending and waiting: sendable (reason cleared), skipped, or waiting with the newer
    reason. Returns how many rows changed."""
    check_delivery_transition(DeliveryStatus.PENDING, DeliveryStatus.SKIPPED)
    changed = 0
    for domain, decision in decisions.items():
        ids = [delivery_id for delivery_id, _ in rows.get(domain, [])]
        reason = fit_reason(decision.reason)
        values: dict[str, object] = {"reason": reason, "updated_at": now}
        # rows that wait on for the same cause are left as they are (no write a minute)
        differs = deliveries.c.reason != reason if decision.action is DnsAction.WAIT else sa.true()
        if decision.action is DnsAction.SKIP:
            values["status"] = DeliveryStatus.SKIPPED
        for start in range(0, len(ids), 500):
            changed += conn.execute(
                deliveries.update()
                .where(
                    deliveries.c.id.in_(ids[start : start + 500]),
                    deliveries.c.status == DeliveryStatus.PENDING,
                    _waiting(),
                    differs,
                )
                .values(**values)
            ).rowcount
    return changed
