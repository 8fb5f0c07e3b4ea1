"""The workspace's keys: rotating the secret key (every stored secret re-encrypted in one
transaction, then the new key put in place), and the signing keys that survive a rotation.

With a key file, the new key is written beside it (`secret.key.new`, 0600) before the database
changes, and moved over the old one after the commit, so a crash in between leaves both keys on
disk and never a secret no key can open. With OUTREACH_SECRET_KEY, the new key comes from
OUTREACH_NEW_SECRET_KEY and the user swaps the variables afterwards.

Unsubscribe links are signed with a random signing key made once per workspace and stored only
encrypted with the secret key; a rotation re-encrypts it like any other secret, so the key itself
does not change and links in mail sent before a rotation keep verifying after it. Links mailed
before that key existed were signed with a key derived from the secret: the first rotation keeps
that derived key too (`LEGACY_UNSUBSCRIBE_PURPOSE`).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from secrets import token_bytes

from cryptography.fernet import Fernet

from outreach_core.adapters import crypto
from outreach_core.adapters.store import audit, secrets, signing_keys
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.errors import ConfigError

NEW_KEY_SUFFIX = ".new"
#: what the workspace signs with a key of its own (`signing_key`)
UNSUBSCRIBE_PURPOSE = "unsubscribe"
SIGNING_PURPOSES = (UNSUBSCRIBE_PURPOSE,)
#: the key unsubscribe links were signed with before signing keys were stored (derived from
#: the secret key), kept at the first rotation so those links outlive their secret
LEGACY_UNSUBSCRIBE_PURPOSE = "unsubscribe-derived"
#: bytes of a signing key (HMAC-SHA256 keys: the hash's own size)
SIGNING_KEY_BYTES = 32


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
    """Re-encrypt every engine secret, SQL-source secret and signing key with a new key, all
    or nothing."""
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
    # A signing key made for the first time while the rotation runs would be stored under the
    # old key after the rotation read the rows, and no key could open it; made now, it is
    # among the rows rotated.
    for purpose in SIGNING_PURPOSES:
        ensure_signing_key(ws, purpose)
    # Links mailed before signing keys were stored carry tokens under a key derived from the
    # secret; the first rotation retires that secret, so its derived key is kept (encrypted,
    # rotated with the rest from then on). Later secrets never signed a link.
    keep_signing_key(ws, LEGACY_UNSUBSCRIBE_PURPOSE, derived_unsubscribe_key(ws))
    new = Fernet(fresh)
    now = utcnow()
    try:
        with ws.db.begin() as conn:
            # first: a process storing a secret meanwhile waits for this commit (then sees the
            # new key), or has committed its secret before the rows below are read
            secrets.lock_key_check(conn)
            counts = secrets.reencrypt_all(
                conn, lambda token: crypto.encrypt(new, crypto.decrypt(old, token))
            )
            secrets.set_key_check(conn, crypto.encrypt(new, crypto.KEY_CHECK_PLAINTEXT.decode()))
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
    ws.fernet.adopt(fresh)
    return Rotation(counts=counts, key_file=key_file)


# --- signing keys -----------------------------------------------------------------------------


def _decode(ws: Workspace, key_encrypted: str) -> bytes:
    return base64.urlsafe_b64decode(crypto.decrypt(ws.fernet, key_encrypted))


def ensure_signing_key(ws: Workspace, purpose: str) -> bytes:
    """Store a new random key for `purpose` unless one exists; returns the stored one.

    Two processes doing this at once end with one key: the unique purpose lets only the first
    INSERT in, and each then reads back the key that won, not the one it made.
    """
    return keep_signing_key(ws, purpose, token_bytes(SIGNING_KEY_BYTES))


def keep_signing_key(ws: Workspace, purpose: str, key: bytes) -> bytes:
    """Store `key` for `purpose` unless a key is stored already; returns the stored one."""
    encoded = base64.urlsafe_b64encode(key).decode()
    with ws.db.begin() as conn:
        signing_keys.add_if_absent(conn, purpose, ws.encrypt(conn, encoded), now=utcnow())
        stored = signing_keys.get_encrypted(conn, purpose)
    if stored is None:  # the row was there a moment ago: only a concurrent delete explains it
        raise ConfigError(f"the {purpose} signing key vanished while it was being created")
    return _decode(ws, stored)


def derived_unsubscribe_key(ws: Workspace) -> bytes:
    """The key unsubscribe links were signed with before signing keys were stored: derived
    from the current secret key."""
    secret = crypto.load_secret(ws.settings.secret_key, ws.settings.data_dir)
    return crypto.derived_key(secret, UNSUBSCRIBE_PURPOSE)


def stored_signing_key(ws: Workspace, purpose: str) -> bytes | None:
    """The key stored for `purpose`, or None; never makes one."""
    with ws.db.connect() as conn:
        stored = signing_keys.get_encrypted(conn, purpose)
    return None if stored is None else _decode(ws, stored)


def signing_key(ws: Workspace, purpose: str) -> bytes:
    """The workspace's signing key for `purpose`, made on first use (random, stored encrypted)."""
    stored = stored_signing_key(ws, purpose)
    return stored if stored is not None else ensure_signing_key(ws, purpose)
