"""What the SQL source attacks aim at: a victim table in a fresh PostgreSQL schema, a marker
file that `COPY … TO PROGRAM` would create, a bystander connection a query could terminate,
and the queries that hide a second statement from a lexer that misreads one quoting form.

Used by tests/integration/test_sql_source_attacks.py and test_source_cli.py; import the
fixtures into the test module to use them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

# `{payload}` runs after a COMMIT ends the READ ONLY transaction, if the server ever sees it
HIDING = {
    "escape string": "SELECT E'\\'' AS email; COMMIT; {payload}; SELECT 1 --'",
    "escape string continued": "SELECT E'a'\n'\\'' AS email; COMMIT; {payload}; SELECT 1 --'",
    "dollar quote": "SELECT $$'$$ AS email; COMMIT; {payload}; SELECT '$$'",
    "tagged dollar quote": "SELECT $q$ $$ ' $q$ AS email; COMMIT; {payload}; SELECT '$$'",
    "nested comment": "SELECT 1 AS email /* /* */ ' */ ; COMMIT; {payload}; SELECT ' --'",
    "quoted identifier": 'SELECT 1 AS "e\\"; COMMIT; {payload}; SELECT 1 --"',
    "comment ended by CR": "SELECT 1 AS email --\r; COMMIT; {payload}; SELECT 1",
}
PAYLOADS = {
    "insert": "INSERT INTO victim VALUES (666)",
    "drop table": "DROP TABLE victim",
    "copy to program": "COPY (SELECT 1) TO PROGRAM 'cat >/dev/null && touch {marker}'",
    "sleep past the timeout": "SELECT pg_sleep(30)",
    "terminate a backend": "SELECT pg_terminate_backend({pid})",
}
# one statement each, that acts on the server even in a READ ONLY transaction
FUNCTIONS = {
    "pg_terminate_backend": "SELECT pg_terminate_backend({pid}) AS email",
    "pg_cancel_backend": "SELECT pg_catalog.pg_cancel_backend({pid}) AS email",
    "pg_read_file": "SELECT pg_read_file('/etc/passwd') AS email",
    "quoted pg_read_binary_file": "SELECT \"pg_read_binary_file\"('/etc/passwd') AS email",
    "advisory lock": "SELECT pg_advisory_lock(4242) AS email",
    "set_config": "SELECT set_config('statement_timeout', '0', false) AS email",
    "query_to_xml": "SELECT query_to_xml('SELECT pg_terminate_backend({pid})', true, true, '')",
    "copy to program": "COPY (SELECT 1) TO PROGRAM 'cat >/dev/null && touch {marker}'",
}


@dataclass
class Victim:
    """The source URL (search_path = the fresh schema) and what an attack could change."""

    url: str
    schema: str
    marker: Path
    bystander: psycopg.Connection

    @property
    def pid(self) -> int:
        return int(self.bystander.info.backend_pid)

    def fill(self, template: str) -> str:
        return template.replace("{marker}", str(self.marker)).replace("{pid}", str(self.pid))

    def state(self) -> tuple[list[int] | None, bool, bool]:
        """(victim rows or None when the table is gone, marker exists, bystander alive)."""
        engine = sa.create_engine(self.url)
        with engine.connect() as conn:
            exists = sa.inspect(conn).has_table("victim", schema=self.schema)
            rows = (
                [r[0] for r in conn.execute(sa.text("SELECT id FROM victim ORDER BY id"))]
                if exists
                else None
            )
        engine.dispose()
        try:
            alive = self.bystander.execute("SELECT 1").fetchone() == (1,)
        except psycopg.Error:
            alive = False
        return rows, self.marker.exists(), alive


UNTOUCHED = ([1, 2, 3], False, True)


@pytest.fixture
def victim(postgres_url: str) -> Iterator[Victim]:
    """A victim table (1, 2, 3) in a fresh schema, a marker path the server's user could
    create, and a bystander connection. The marker folder is under /tmp, not tmp_path: the
    server runs as its own user, who cannot enter pytest's private folders. A control run
    of COPY … TO PROGRAM by the test itself must create a file there, or the marker would
    prove nothing (skipped then, saying why)."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        conn.execute(sa.text("CREATE TABLE victim (id integer)"))
        conn.execute(sa.text("INSERT INTO victim VALUES (1), (2), (3)"))
    folder = Path(tempfile.mkdtemp(prefix="outreach-marker-"))
    folder.chmod(0o777)
    control = folder / "control"
    with engine.begin() as conn:
        conn.execute(sa.text(f"COPY (SELECT 1) TO PROGRAM 'cat >/dev/null && touch {control}'"))
    engine.dispose()
    if not control.exists():
        shutil.rmtree(folder)
        pytest.skip("COPY … TO PROGRAM of the test server does not write to this filesystem")
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    raw = engine.raw_connection()
    bystander = raw.driver_connection
    bystander.autocommit = True
    try:
        yield Victim(postgres_url, schema, folder / "marker", bystander)
    finally:
        raw.close()
        engine.dispose()
        shutil.rmtree(folder)
