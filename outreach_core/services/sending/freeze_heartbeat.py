"""The run's heartbeat kept fresh while a long freeze writes its chunks, so that no other
worker takes the run over as orphaned (`workers.STALE_AFTER`) while it is being frozen.

On PostgreSQL the beat is its own short transaction (the freeze's transaction does not touch
the run's row until its end). On SQLite the freeze holds the only write lock, so the beat is
written in the freeze's transaction: other workers cannot take the run over before it commits
(they would need that lock) and, when it does, the heartbeat they read is the fresh one.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from outreach_core.adapters.store import runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import Clock
from outreach_core.domain.models import Run
from outreach_core.services.sending import context


class RunLost(Exception):
    """The run is no longer this worker's: the freeze stops and writes nothing."""


class FreezeHeartbeat:
    """`beat()` after each chunk: refreshes the run's heartbeat every HEARTBEAT_INTERVAL_S."""

    def __init__(self, ws: Workspace, conn: Connection, run: Run, *, clock: Clock) -> None:
        self._ws = ws
        self._conn = conn
        self._run = run
        self._clock = clock
        self._last = time.monotonic()

    def beat(self) -> None:
        worker_id = self._run.worker_id
        if worker_id is None:  # frozen outside an executor (a direct call): nobody to keep it
            return
        if time.monotonic() - self._last < context.HEARTBEAT_INTERVAL_S:
            return
        self._last = time.monotonic()
        if self._conn.dialect.name == "sqlite":
            kept = runs.heartbeat(self._conn, self._run.id, worker_id=worker_id, now=self._clock())
        else:
            with self._ws.db.begin() as beat_conn:
                kept = runs.heartbeat(
                    beat_conn, self._run.id, worker_id=worker_id, now=self._clock()
                )
        if not kept:
            raise RunLost(f"run {self._run.id}: lost to another executor while freezing")
