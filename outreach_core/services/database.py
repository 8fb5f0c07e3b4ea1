"""Use case of the database's schema: where it is. Opening a workspace applies every pending
migration (`open_workspace`), so `db upgrade` has only to report the revision reached."""

from __future__ import annotations

from outreach_core.adapters.store import db
from outreach_core.adapters.workspace import Workspace


def schema_revision(ws: Workspace) -> str | None:
    """The migration the workspace's database is at (None for an empty database)."""
    return db.current_revision(ws.db)
