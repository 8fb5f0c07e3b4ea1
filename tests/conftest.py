"""Shared fixtures: a workspace on SQLite or on the PostgreSQL server at 127.0.0.1:5432.

PostgreSQL tests get a schema of their own (dropped afterwards), so they can run side by side
on the shared `test` database. Outside CI an unreachable server skips them, saying so; in CI
(`CI` set) it fails them, because a green run must have exercised PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import db
from outreach_core.adapters.workspace import Workspace, open_workspace
from tests.dns_server import MX_OK, DnsServer, standard_zones

if TYPE_CHECKING:
    from tests.postfix_server import PostfixServer

REPO = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get(
    "OUTREACH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_problem() -> str | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        return str(exc.orig).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server URL, after checking it answers."""
    problem = _postgres_problem()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    return POSTGRES_URL


def fresh_schema(server_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema of the server's database, dropped after."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{server_url}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    yield from fresh_schema(postgres_server)


@pytest.fixture(scope="session")
def postgres_icu_server(postgres_server: str) -> Iterator[str]:
    """A database whose default collation is ICU's en-US, as on servers set up with an
    en_US locale: there text sorts by language rules (punctuation and case weigh less), so
    a query that relies on character order gives other answers than on `test` (C.UTF-8)."""
    name = f"outreach_icu_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DATABASE {name} TEMPLATE template0 "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    try:
        yield postgres_server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'outreach.db'}"
    return request.getfixturevalue("postgres_url")


def _new_sqlite_file(engine: sa.Engine) -> Path | None:
    """The file of a SQLite engine if nothing has been written to it yet (no page, no WAL)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    if url.database == ":memory:" or url.database.startswith("file:"):
        return None
    path = Path(url.database)
    wal = path.with_name(path.name + "-wal")
    if not path.is_file() or path.stat().st_size or wal.exists():
        return None
    return path


@pytest.fixture(scope="session", autouse=True)
def _sqlite_migrated_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Migrations run from scratch on SQLite once per test process, not once per workspace.

    The session starts by migrating an empty template file; every upgrade of a new, empty
    SQLite file (a test's workspace) then starts from a copy of it, and the real upgrade runs
    on the copy (finding it at head). Databases that hold anything, PostgreSQL, and
    subprocesses (CLI, daemon, dashboard) migrate as they always do.
    """
    migrate = db.upgrade
    template = tmp_path_factory.mktemp("migrated") / "outreach.db"
    template_engine = db.create_db_engine(f"sqlite:///{template}")
    migrate(template_engine)
    template_engine.dispose()  # the last connection checkpoints the WAL into the file
    assert not template.with_name(template.name + "-wal").exists()

    def upgrade(engine: sa.Engine) -> None:
        path = _new_sqlite_file(engine)
        if path is not None:
            engine.dispose()
            with path.open("r+b") as copy:  # keeps the file and its 0600 mode
                copy.write(template.read_bytes())
        migrate(engine)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "upgrade", upgrade)
        yield


def make_settings(tmp_path: Path, database_url: str | None = None) -> Settings:
    """Settings isolated in tmp_path (no .env, no environment leaking in)."""
    return Settings(
        _env_file=None,
        OUTREACH_DATA_DIR=tmp_path / "data",
        OUTREACH_DATABASE_URL=database_url,
    )


@pytest.fixture
def workspace(db_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """A migrated workspace on the backend of `db_url`."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A migrated workspace on SQLite only."""
    ws = open_workspace(make_settings(tmp_path))
    yield ws
    ws.close()


@pytest.fixture
def postgres_workspace(postgres_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """A migrated workspace on PostgreSQL only (a fresh schema)."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    yield ws
    ws.close()


_CATCH_ALL: list[DnsServer] = []


def catch_all_dns() -> str:
    """`host:port` of a loopback DNS server answering MX for every name but the test zones'.

    Every test's settings point at it (the session fixture below puts it in the environment),
    so no test ever asks a real DNS server.
    """
    if not _CATCH_ALL:
        _CATCH_ALL.append(DnsServer(standard_zones(), default=MX_OK).start())
    return _CATCH_ALL[0].nameserver


@pytest.fixture(scope="session", autouse=True)
def _loopback_dns_for_every_test() -> Iterator[None]:
    """OUTREACH_DNS_NAMESERVERS = the catch-all loopback server, for the whole session."""
    previous = os.environ.get("OUTREACH_DNS_NAMESERVERS")
    os.environ["OUTREACH_DNS_NAMESERVERS"] = catch_all_dns()
    yield
    if previous is None:
        os.environ.pop("OUTREACH_DNS_NAMESERVERS", None)
    else:
        os.environ["OUTREACH_DNS_NAMESERVERS"] = previous
    _CATCH_ALL.pop().stop()


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for running the CLI or daemon as a subprocess against tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REPORT_"))}
    env.update(
        OUTREACH_DATA_DIR=str(tmp_path / "data"),
        OUTREACH_DNS_NAMESERVERS=catch_all_dns(),
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def run_cli(
    tmp_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m outreach_core ARGS` run from the repository, output captured as text.

    `env` defaults to `cli_env(tmp_path)`: the CLI works on the test's own data folder.
    """
    return subprocess.run(
        [sys.executable, "-m", "outreach_core", *args],
        cwd=REPO,
        env=dict(cli_env(tmp_path) if env is None else env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    """The loopback DNS server with one test zone per DNS outcome (slow name: 0.3 s late)."""
    server = DnsServer(standard_zones(slow_delay=0.3)).start()
    yield server
    server.stop()


def wait_for(predicate: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
    """Poll `predicate` until it holds; fail saying what was awaited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture(scope="session")
def postfix() -> Iterator[PostfixServer]:
    """A private Postfix (STARTTLS and AUTH required, self-signed certificate, catch-all
    Maildir) on 127.0.0.1, once per session. Outside CI a machine without it skips, saying
    why; in CI (`CI` set) that fails, because a green run must have exercised it."""
    from tests.postfix_server import PostfixServer, postfix_problem  # only where it is used

    problem = postfix_problem()
    if problem:
        message = f"no private Postfix: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    with PostfixServer(password=secrets.token_urlsafe(12)) as server:
        yield server


#: set by .ci/run for its second Python: the browser sessions and the daemon races ran on the
#: first one already, and running them twice would take the CI run past its 30 minutes
SECOND_PYTHON = os.environ.get("OUTREACH_SECOND_PYTHON") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On CI's second Python, skip (saying why) the `browser` and `races` tests: what they
    drive (Chromium, several daemon processes) is the same code the rest of the suite runs on
    this Python, and each ran on the first Python of the same CI run."""
    if not SECOND_PYTHON:
        return
    once = pytest.mark.skip(
        reason="browser and daemon-race tests run once per CI run, on its first Python"
    )
    for item in items:
        uses_browser = "chromium_path" in getattr(item, "fixturenames", ())
        if uses_browser or item.get_closest_marker("browser") or item.get_closest_marker("races"):
            item.add_marker(once)
