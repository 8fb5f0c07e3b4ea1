"""Audiences: storing an imported contacts file, and reading audiences and their rows."""

from __future__ import annotations

from typing import Any

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audiences, audit
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Audience


def import_audience(ws: Workspace, parsed: ParsedFile, *, name: str, actor: str) -> Audience:
    """Store a parsed contacts file as an audience."""
    now = utcnow()
    with ws.db.begin() as conn:
        audience_id = audiences.insert_audience(
            conn,
            name=name,
            source=parsed.source,
            email_column=parsed.email_column,
            columns=parsed.columns,
            headers=parsed.headers,
            rows=parsed.rows,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            action="audience.import",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": name, "rows": len(parsed.rows)},
        )
        return audiences.get_audience(conn, audience_id)


def list_audiences(ws: Workspace) -> list[Audience]:
    """All audiences, by name."""
    with ws.db.connect() as conn:
        return audiences.list_audiences(conn)


def audience_rows(ws: Workspace, audience_id: int) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) of every row of an audience, in file order."""
    with ws.db.connect() as conn:
        return list(audiences.iter_rows(conn, audience_id))
