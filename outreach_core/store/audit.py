"""The audit log: who changed what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.store.tables import audit_log


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry; `detail` must never hold a secret."""
    conn.execute(
        audit_log.insert().values(
            at=now, actor=actor, action=action, subject=subject, detail=detail or {}
        )
    )


def latest(conn: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest entries first."""
    rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]
