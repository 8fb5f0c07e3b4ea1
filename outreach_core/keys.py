"""Rotating the secret key: every stored secret re-encrypted in one transaction, then the new
key put in place.

With a key file, the new key is written beside it (`secret.key.new`, 0600) before the database
changes, and moved over the old one after the commit, so a crash in between leaves both keys on
disk and never a secret no key can open. With OUTREACH_SECRET_KEY, the new key comes from
OUTREACH_NEW_SECRET_KEY and the user swaps the variables afterwards.

Unsubscribe links are signed with a key derived from the secret key: links in mail sent before a
rotation stop verifying after it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from outreach_core import crypto
from outreach_core.errors import ConfigError
from outreach_core.store import audit, secrets
from outreach_core.workspace import Workspace, utcnow

NEW_KEY_SUFFIX = ".new"


@dataclass(frozen=True)
class Rotation:
    """What a rotation re-encrypted and where the new key is."""

    counts: dict[str, int]
    key_file: Path | None

    def __str__(self) -> str:
        done = ", ".join(f"{n} {table}" for table, n in self.counts.items())
        where = (
            f"the new key is in {self.key_file}"
            if self.key_file
            else "now set OUTREACH_SECRET_KEY to the value of OUTREACH_NEW_SECRET_KEY"
        )
        return f"re-encrypted {done}; {where}"


def _check(key: str) -> bytes:
    try:
        Fernet(key.encode())
    except ValueError:
        raise ConfigError("OUTREACH_NEW_SECRET_KEY: must be a Fernet key") from None
    return key.encode()


def rotate_key(ws: Workspace, *, new_key: str | None = None, actor: str) -> Rotation:
    """Re-encrypt every engine and SQL-source secret with a new key, all or nothing."""
    settings = ws.settings
    old = crypto.load_fernet(settings.secret_key, settings.data_dir)
    key_file: Path | None = None
    if settings.secret_key:
        if not new_key:
            raise ConfigError(
                "the key comes from OUTREACH_SECRET_KEY: put the new key in "
                "OUTREACH_NEW_SECRET_KEY and run rotate-key again"
            )
        fresh = _check(new_key)
    else:
        fresh = _check(new_key) if new_key else Fernet.generate_key()
        key_file = settings.data_dir / crypto.KEY_FILE_NAME
        pending = key_file.with_name(key_file.name + NEW_KEY_SUFFIX)
        pending.unlink(missing_ok=True)
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(fresh)
    new = Fernet(fresh)
    now = utcnow()
    try:
        with ws.db.begin() as conn:
            counts = secrets.reencrypt_all(
                conn, lambda token: crypto.encrypt(new, crypto.decrypt(old, token))
            )
            audit.record(
                conn, actor=actor, action="secret_key.rotate", subject="secret key", now=now,
                detail=counts,
            )  # fmt: skip
    except BaseException:
        if key_file is not None:  # nothing changed: the old key stays the only one
            key_file.with_name(key_file.name + NEW_KEY_SUFFIX).unlink(missing_ok=True)
        raise
    if key_file is not None:
        os.replace(key_file.with_name(key_file.name + NEW_KEY_SUFFIX), key_file)
    ws.fernet = new
    return Rotation(counts=counts, key_file=key_file)
