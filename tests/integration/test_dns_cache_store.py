"""The DNS verdict cache under two writers at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from outreach_core.adapters.store import dns_cache
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.mx import DomainResult, DomainStatus


def wait_until_writer_waits(ws: Workspace, pids: list[int]) -> None:
    """PostgreSQL: until the other writer's session (its pid in `pids`) waits on a lock, i.e.
    it reached our uncommitted row. SQLite serialises writers whole, so there a short pause suffices: the
    other writer then waits for the database lock, which is no race."""
    if ws.db.dialect.name == "sqlite":
        time.sleep(0.2)
        return
    query = sa.text("select wait_event_type from pg_stat_activity where pid = :pid")
    with ws.db.connect() as probe:
        for _ in range(600):
            if pids and probe.execute(query, {"pid": pids[0]}).scalar() == "Lock":
                return
            time.sleep(0.05)
    raise AssertionError("the other writer never waited on the first one's row")


def test_two_runs_storing_the_same_domain_at_once_both_succeed(workspace: Workspace) -> None:
    """Verify a second writer of a domain's verdict, waiting on the first's uncommitted row,
    replaces it instead of failing on the primary key (as two runs' pre-flights may)."""
    first = DomainResult("example.com", DomainStatus.VALID, "mx1.example.com", "mx")
    second = DomainResult("example.com", DomainStatus.VALID, "mx2.example.com", "mx")
    errors: list[BaseException] = []
    pids: list[int] = []

    def other_writer() -> None:
        try:
            with workspace.db.begin() as conn:
                if conn.dialect.name == "postgresql":
                    pids.append(conn.execute(sa.text("select pg_backend_pid()")).scalar_one())
                dns_cache.store_results(conn, [second], now=utcnow())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    with workspace.db.connect() as conn:
        with conn.begin():
            dns_cache.store_results(conn, [first], now=utcnow())
            writer = threading.Thread(target=other_writer)
            writer.start()
            wait_until_writer_waits(workspace, pids)
        writer.join(timeout=60)
    assert not writer.is_alive()
    assert not errors

    with workspace.db.connect() as conn:
        cached = dns_cache.fresh_results(
            conn, ["example.com"], checked_after=utcnow().replace(year=2000)
        )
    assert cached["example.com"].mx_host == "mx2.example.com"
