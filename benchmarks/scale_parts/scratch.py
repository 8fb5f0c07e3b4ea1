"""Scratch PostgreSQL databases with unique names, dropped at the end, on Ctrl-C and on SIGTERM.

Each part of the benchmark gets databases of its own, so nothing it leaves behind (a killed
daemon's rows) bends the next figure, and the server is left as it was found.
"""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import sqlalchemy as sa


class ScratchDatabases:
    """Creates `outreach_bench_<random>_<label>` databases on the server of `server_url`."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.prefix = f"outreach_bench_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []
        self._admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")

    def create(self, label: str) -> str:
        """A new empty database; its URL."""
        name = f"{self.prefix}_{label}"
        with self._admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_of(name)

    def url_of(self, name: str) -> str:
        return sa.make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database made here (WITH FORCE: a killed daemon's sessions may linger)."""
        with self._admin.connect() as conn:
            while self.created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.created.pop()}" WITH (FORCE)')
        self._admin.dispose()


@contextmanager
def scratch_databases(server_url: str) -> Iterator[ScratchDatabases]:
    """ScratchDatabases dropped on the way out, however the benchmark ends: SIGTERM is turned
    into SystemExit so the `finally` (and the children's clean-up) runs as for Ctrl-C."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    scratch = ScratchDatabases(server_url)
    try:
        yield scratch
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not cut the clean-up
        try:
            scratch.drop_all()
        finally:
            signal.signal(signal.SIGTERM, previous)


def fill_people(url: str, count: int) -> float:
    """A `bench_people(email, name, n)` table of `count` rows, made by the server itself
    (generate_series), in seconds."""
    import time

    start = time.perf_counter()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bench_people AS SELECT 'p' || n || '@example.com' AS email, "
            "'Person ' || n AS name, n FROM generate_series(1, %(count)s) AS n",
            {"count": count},
        )
    engine.dispose()
    return time.perf_counter() - start
