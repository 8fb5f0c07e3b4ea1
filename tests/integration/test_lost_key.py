"""A lost or wrong secret key is refused before anything changes: with secrets stored and the
key file gone (or OUTREACH_SECRET_KEY set to another key), `resume`, `send` and the daemon exit 2
naming the key file and OUTREACH_SECRET_KEY, leave every row as it was and leave no new key
behind; a new workspace still gets its key (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import ConfigError

from conftest import REPO, cli_env, make_settings, run_cli

ROWS = 5


def seed(ws: Workspace, outbox: Path) -> int:
    """A workflow whose engine is stored encrypted, and one queued run of it."""
    workflow = services.setup_workflow(
        ws,
        name="kept",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"k{n}@example.com"} for n in range(ROWS)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def snapshot(database_url: str) -> dict[str, list[tuple]]:
    """Every row of every table, read straight from the database."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted(map(tuple, conn.execute(table.select())), key=repr)
                for table in tables.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def commands(tmp_path: Path, run_id: int) -> dict[str, list[str]]:
    contacts = tmp_path / "more.csv"
    contacts.write_text("email\nnew1@example.com\nnew2@example.com\n")
    template = tmp_path / "tpl"
    template.mkdir(exist_ok=True)
    (template / "subject.txt").write_text("Hi")
    (template / "body.txt").write_text("Hello")
    module = ["-m", "outreach_core"]
    return {
        "resume": [*module, "resume", str(run_id)],
        "send": [*module, "send", str(contacts), "--template", str(template), "--engine",
                 f"outbox://{tmp_path / 'outbox'}", "--skip-mx"],
        "daemon": ["scheduler_daemon.py", "--once"],
    }  # fmt: skip


def refused_everywhere(tmp_path: Path, run_id: int, env: dict[str, str], db: str) -> None:
    """Each command exits 2 with the way out, and the database is exactly as before."""
    before = snapshot(db)
    assert [r for r in before["runs"] if r[0] == run_id], "the run is there"
    for name, argv in commands(tmp_path, run_id).items():
        done = subprocess.run(
            [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        key_file = str(tmp_path / "data" / crypto.KEY_FILE_NAME)
        assert key_file in done.stderr and "OUTREACH_SECRET_KEY" in done.stderr, name
        assert "Traceback" not in done.stderr, name
        assert snapshot(db) == before, f"{name} changed the database"
    assert not list(tmp_path.glob("data/*.new"))


@pytest.fixture
def stored(db_url: str, tmp_path: Path) -> int:
    """A workspace with an engine stored and a queued run; closed, its key file in place."""
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        return seed(ws, tmp_path / "outbox")
    finally:
        ws.close()


def test_a_missing_key_is_refused_by_every_command(
    stored: int, db_url: str, tmp_path: Path
) -> None:
    """Verify with the key file removed: resume, send and the daemon exit 2 naming the key file
    and OUTREACH_SECRET_KEY, the run (status, worker, updated_at) and every other row stay as
    they were, and no new key file is left behind, so restoring the old one works."""
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    kept = key_file.read_bytes()
    key_file.unlink()

    refused_everywhere(tmp_path, stored, cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url), db_url)
    assert not key_file.exists()

    key_file.write_bytes(kept)  # restored from the backup: the run goes out
    key_file.chmod(0o600)
    resumed = run_cli(
        tmp_path, "resume", str(stored), env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(message_files(tmp_path / "outbox"))) == ROWS


def test_a_wrong_key_is_refused_by_every_command(stored: int, db_url: str, tmp_path: Path) -> None:
    """Verify OUTREACH_SECRET_KEY set to another Fernet key: the same refusal, nothing changed,
    and the key file is untouched."""
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    kept = key_file.read_bytes()
    env = cli_env(
        tmp_path, OUTREACH_DATABASE_URL=db_url, OUTREACH_SECRET_KEY=Fernet.generate_key().decode()
    )
    refused_everywhere(tmp_path, stored, env, db_url)
    assert key_file.read_bytes() == kept


def test_a_wrong_key_file_is_refused_in_process(stored: int, db_url: str, tmp_path: Path) -> None:
    """Verify a key file holding another key: open_workspace raises the ConfigError naming the
    key file and OUTREACH_SECRET_KEY, and the wrong file is left as the user put it."""
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    other = Fernet.generate_key()
    key_file.write_bytes(other)
    with pytest.raises(ConfigError, match="does not decrypt") as raised:
        open_workspace(make_settings(tmp_path, db_url))
    assert str(key_file) in str(raised.value) and "OUTREACH_SECRET_KEY" in str(raised.value)
    assert key_file.read_bytes() == other


def test_an_interrupted_rotation_is_named(stored: int, db_url: str, tmp_path: Path) -> None:
    """Verify the refusal points at `secret.key.new` when a rotation left it beside the key."""
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    pending = key_file.with_name(key_file.name + ".new")
    pending.write_bytes(key_file.read_bytes())
    key_file.write_bytes(Fernet.generate_key())
    with pytest.raises(ConfigError, match="rotation was interrupted"):
        open_workspace(make_settings(tmp_path, db_url))


def test_a_new_workspace_gets_a_key(db_url: str, tmp_path: Path) -> None:
    """Verify an empty database and no key: a key file is made and the demo loads."""
    key_file = tmp_path / "data" / crypto.KEY_FILE_NAME
    assert not key_file.exists()
    done = run_cli(tmp_path, "demo", env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url))
    assert done.returncode == 0, done.stderr
    assert key_file.exists()
    ws = open_workspace(make_settings(tmp_path, db_url))
    try:
        with ws.db.connect() as conn:
            token = conn.execute(sa.select(tables.engines.c.url_encrypted)).scalars().first()
        assert token is not None and crypto.decrypt(ws.fernet, token)
    finally:
        ws.close()
