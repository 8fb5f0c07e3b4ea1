"""Daemon heartbeats: which scheduler daemons are alive (for `--health`, Home and batch claims)."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import daemons


class Daemon(BaseModel):
    """One scheduler daemon process as last reported."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    http: str | None = None

    def is_alive(self, *, now: datetime, stale_after: timedelta) -> bool:
        """Fresh heartbeat, and on this host a process that still exists."""
        if now - self.heartbeat_at > stale_after:
            return False
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True


def register(conn: Connection, daemon_id: str, *, now: datetime, http: str | None = None) -> None:
    """Record a starting daemon (its host and pid come from this process)."""
    conn.execute(
        daemons.insert().values(
            id=daemon_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
            http=http,
        )
    )


def heartbeat(conn: Connection, daemon_id: str, *, now: datetime) -> bool:
    """Refresh the heartbeat; False when the row is gone (pruned by another daemon)."""
    result = conn.execute(
        daemons.update().where(daemons.c.id == daemon_id).values(heartbeat_at=now)
    )
    return result.rowcount == 1


def unregister(conn: Connection, daemon_id: str) -> None:
    """A clean stop removes the daemon's row."""
    conn.execute(daemons.delete().where(daemons.c.id == daemon_id))


def get_daemon(conn: Connection, daemon_id: str) -> Daemon | None:
    """The daemon's row, or None."""
    row = conn.execute(sa.select(daemons).where(daemons.c.id == daemon_id)).first()
    return Daemon.model_validate(dict(row._mapping)) if row else None


def list_daemons(conn: Connection) -> list[Daemon]:
    """Every registered daemon, freshest heartbeat first."""
    rows = conn.execute(sa.select(daemons).order_by(daemons.c.heartbeat_at.desc()))
    return [Daemon.model_validate(dict(row._mapping)) for row in rows]


def prune(conn: Connection, *, heartbeat_before: datetime) -> int:
    """Forget daemons silent since `heartbeat_before` (killed without a clean stop)."""
    return conn.execute(daemons.delete().where(daemons.c.heartbeat_at < heartbeat_before)).rowcount
