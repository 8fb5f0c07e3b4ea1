"""Secrets at rest: Fernet encryption with the key from settings or a 0600 key file."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from outreach_core.adapters.file_modes import private_dir, private_file
from outreach_core.errors import ConfigError

KEY_FILE_NAME = "secret.key"


def load_secret(secret_key: str | None, data_dir: Path) -> bytes:
    """The workspace's secret key (a Fernet key), checked.

    `OUTREACH_SECRET_KEY` wins; otherwise a key file in the data folder is read, or created
    with mode 0600 on first start so that a new workspace is encrypted from its first engine.
    """
    if secret_key:
        try:
            Fernet(secret_key.encode())
        except ValueError:
            raise ConfigError(
                "OUTREACH_SECRET_KEY: must be a Fernet key (32 url-safe base64 bytes); "
                'make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            ) from None
        return secret_key.encode()
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        private_dir(data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(Fernet.generate_key())
    else:
        private_file(path)  # a key file readable by others is tightened, with a log line
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(f"the key file {path} is not a Fernet key") from None
    return key


def load_fernet(secret_key: str | None, data_dir: Path) -> Fernet:
    """The cipher for stored secrets, with the key `load_secret` finds."""
    return Fernet(load_secret(secret_key, data_dir))


def derived_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose derived from the workspace's secret: one secret serves every use,
    and no derived key reveals it or another. It changes when the secret is rotated, so keys
    that must outlive a rotation (unsubscribe links) are random and stored instead
    (`keys.signing_key`); unsubscribe links mailed before that are still checked with this."""
    return hmac.new(secret, b"outreach:" + purpose.encode(), hashlib.sha256).digest()


def encrypt(fernet: Fernet, plaintext: str) -> str:
    """Encrypt a secret for storage."""
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt(fernet: Fernet, token: str) -> str:
    """Decrypt a stored secret; a wrong key is a ConfigError, never a traceback."""
    try:
        return fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        raise ConfigError(
            "a stored secret cannot be decrypted: OUTREACH_SECRET_KEY or the key file changed"
        ) from None
