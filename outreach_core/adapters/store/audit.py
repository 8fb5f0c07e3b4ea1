"""The audit log: who changed what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import audit_log


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


def record_many(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    now: datetime,
    details: list[dict[str, Any]],
) -> None:
    """Append one entry per detail in one statement (many entries of one kind at once)."""
    if details:
        conn.execute(
            audit_log.insert(),
            [
                {"at": now, "actor": actor, "action": action, "subject": subject, "detail": d}
                for d in details
            ],
        )


def latest(conn: Connection, *, limit: int = 50, search: str = "") -> list[dict[str, Any]]:
    """The newest entries first; `search` keeps those whose actor, action or subject has it."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    needle = search.strip().lower()
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        query = query.where(
            sa.or_(
                *(
                    sa.func.lower(column).like(pattern, escape="\\")
                    for column in (audit_log.c.actor, audit_log.c.action, audit_log.c.subject)
                )
            )
        )
    return [dict(row._mapping) for row in conn.execute(query)]
