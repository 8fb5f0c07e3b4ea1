"""Secrets at rest: the key file is 0600, secrets are stored only encrypted, and rotate-key
re-encrypts every engine and SQL-source secret and signing key in one transaction (SQLite and
PostgreSQL)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.errors import ConfigError
from outreach_core.services import compliance, keys, sources

from conftest import make_settings, run_cli

SMTP_PASSWORD = "Sm7p-Pa55w0rd-rot8"
SQL_PASSWORD = "Sq1-Pa55w0rd-rot8"


def seed(ws: Workspace, tmp_path: Path) -> None:
    services.save_engine(
        ws, name="relay", url=f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:2525?tls=none",
        from_email="team@example.com", from_name="Team", actor="t",
    )  # fmt: skip
    sources.save_source(
        ws, name="crm", url=f"postgresql+psycopg://crm:{SQL_PASSWORD}@127.0.0.1:5432/crm",
        query="SELECT email FROM people", values={}, actor="t",
    )  # fmt: skip


def stored_tokens(ws: Workspace) -> list[str]:
    with ws.db.connect() as conn:
        return [
            token
            for table in (tables.engines, tables.sql_sources)
            for (token,) in conn.execute(sa.select(table.c.url_encrypted))
        ]


def dump(ws: Workspace) -> str:
    """Every value of every table, as text."""
    with ws.db.connect() as conn:
        return "\n".join(
            repr(row)
            for table in tables.metadata.sorted_tables
            for row in conn.execute(table.select())
        )


def test_key_file_is_created_owner_only(tmp_path: Path) -> None:
    """Verify the first start writes a 0600 key file and the next start reuses it."""
    ws = open_workspace(make_settings(tmp_path))
    path = tmp_path / "data" / crypto.KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    ws.close()
    ws = open_workspace(make_settings(tmp_path))
    assert path.read_bytes() == key
    ws.close()


def test_rotation_reencrypts_every_secret_with_the_new_key_file(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify rotate-key: the database holds the secrets only encrypted, under the new key."""
    seed(workspace, tmp_path)
    assert SMTP_PASSWORD not in dump(workspace) and SQL_PASSWORD not in dump(workspace)
    key_file = workspace.settings.data_dir / crypto.KEY_FILE_NAME
    old = Fernet(key_file.read_bytes())
    before = stored_tokens(workspace)

    rotation = keys.rotate_key(workspace, actor="test")

    # the unsubscribe signing key is made before rotating if it did not exist yet, and the
    # retiring secret's derived unsubscribe key is kept (links mailed before signing keys)
    assert rotation.counts == {"engines": 1, "sql_sources": 1, "signing_keys": 2}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.with_name("secret.key.new").exists()
    new = Fernet(key_file.read_bytes())
    after = stored_tokens(workspace)
    assert set(after).isdisjoint(before)
    plain = sorted(new.decrypt(t.encode()).decode() for t in after)
    assert SMTP_PASSWORD in plain[1] and SQL_PASSWORD in plain[0]
    for token in after:
        with pytest.raises(InvalidToken):
            old.decrypt(token.encode())
    assert SMTP_PASSWORD not in dump(workspace) and SQL_PASSWORD not in dump(workspace)
    reopened = open_workspace(make_settings(tmp_path, workspace.settings.database_url))
    try:  # the signing key made for the rotation opens under the new key
        assert len(compliance.unsubscribe_key(reopened)) == 32
    finally:
        reopened.close()


def test_rotation_with_an_environment_key_needs_the_new_key(tmp_path: Path) -> None:
    """Verify OUTREACH_SECRET_KEY: without OUTREACH_NEW_SECRET_KEY nothing changes; with it
    every secret moves to it; a bad new key is refused before anything changes."""
    old_key = Fernet.generate_key().decode()
    settings = make_settings(tmp_path).model_copy(update={"secret_key": old_key})
    ws = open_workspace(settings)
    try:
        seed(ws, tmp_path)
        before = stored_tokens(ws)
        with pytest.raises(ConfigError, match="OUTREACH_NEW_SECRET_KEY"):
            keys.rotate_key(ws, actor="test")
        with pytest.raises(ConfigError, match="OUTREACH_NEW_SECRET_KEY"):
            keys.rotate_key(ws, new_key="not-a-key", actor="test")
        assert stored_tokens(ws) == before
        new_key = Fernet.generate_key().decode()
        keys.rotate_key(ws, new_key=new_key, actor="test")
        assert all(
            SMTP_PASSWORD in Fernet(new_key.encode()).decrypt(t.encode()).decode()
            or SQL_PASSWORD in Fernet(new_key.encode()).decrypt(t.encode()).decode()
            for t in stored_tokens(ws)
        )
    finally:
        ws.close()


def test_rotate_key_command_keeps_engines_and_the_unsubscribe_key_usable(tmp_path: Path) -> None:
    """Verify `python -m outreach_core rotate-key`: exit 0, says what it did, no secret shown,
    and the workspace still decrypts its engine and has the same unsubscribe key afterwards."""
    ws = open_workspace(make_settings(tmp_path))
    seed(ws, tmp_path)
    unsubscribe_key = compliance.unsubscribe_key(ws)
    ws.close()
    done = run_cli(tmp_path, "rotate-key")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 1 engines, 1 sql_sources, 2 signing_keys" in done.stdout
    assert "no longer verify" not in done.stdout
    assert SMTP_PASSWORD not in done.stdout + done.stderr
    ws = open_workspace(make_settings(tmp_path))
    try:
        with ws.db.connect() as conn:
            token = conn.execute(sa.select(tables.engines.c.url_encrypted)).scalar_one()
        assert SMTP_PASSWORD in crypto.decrypt(ws.fernet, token)
        assert compliance.unsubscribe_key(ws) == unsubscribe_key
    finally:
        ws.close()


def test_hash_password_command_prints_a_verifiable_hash(tmp_path: Path) -> None:
    """Verify `hash-password` reads the password from a pipe and prints only its hash."""
    from outreach_core.domain.access import verify_password

    done = run_cli(tmp_path, "hash-password", stdin="s3cret-Dash\n")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert printed.startswith("$argon2id$") and "s3cret-Dash" not in printed
    assert verify_password(printed, "s3cret-Dash")
