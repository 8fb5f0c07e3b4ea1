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


def key_file(data_dir: Path) -> Path:
    """Where the workspace's key lives when OUTREACH_SECRET_KEY is not set."""
    return data_dir / KEY_FILE_NAME


def find_secret(secret_key: str | None, data_dir: Path) -> bytes | None:
    """The workspace's secret key (a Fernet key), checked, or None when there is none yet.

    `OUTREACH_SECRET_KEY` wins; otherwise the key file in the data folder is read. Nothing is
    created here: only a workspace with no encrypted secret yet may get a new key
    (`create_key_file`), or a lost key would be replaced silently.
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
    path = key_file(data_dir)
    if not path.exists():
        return None
    private_file(path)  # a key file readable by others is tightened, with a log line
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(f"the key file {path} is not a Fernet key") from None
    return key


def create_key_file(data_dir: Path) -> bytes:
    """Make the key file (mode 0600) of a workspace that has no key and no secret yet.

    Two processes starting a new workspace at once end with one key: O_EXCL lets only the
    first create the file, and the other reads the key that won.
    """
    private_dir(data_dir)
    path = key_file(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(Fernet.generate_key())
    found = find_secret(None, data_dir)
    if found is None:  # created a moment ago: only a concurrent delete explains it
        raise ConfigError(f"the key file {path} vanished while it was being created")
    return found


def load_secret(secret_key: str | None, data_dir: Path) -> bytes:
    """The workspace's secret key; a missing one is a ConfigError saying how to restore it."""
    found = find_secret(secret_key, data_dir)
    if found is None:
        raise ConfigError(missing_key_message(data_dir, "encrypted secrets"))
    return found


def missing_key_message(data_dir: Path, what: str) -> str:
    """Why a workspace holding `what` refuses to start without its key, and the way out."""
    path = key_file(data_dir)
    return (
        f"the database holds {what}, but their key is missing: there is no key file "
        f"{path} and OUTREACH_SECRET_KEY is not set. Restore the key file {path} (mode 0600) "
        "from your backup, or set OUTREACH_SECRET_KEY to the key they were encrypted with; "
        "no new key was made and nothing was changed, since a new key could not open them"
        + _interrupted_rotation(path)
    )


def wrong_key_message(secret_key: str | None, data_dir: Path, what: str) -> str:
    """Why a workspace refuses a key that does not open its secrets, and the way out."""
    path = key_file(data_dir)
    source = "the key in OUTREACH_SECRET_KEY" if secret_key else f"the key file {path}"
    return (
        f"{source} does not decrypt the {what} stored in the database: it is not the key "
        f"they were encrypted with. Restore the right key file {path} from your backup, or "
        "set OUTREACH_SECRET_KEY to the right key (unset it to use the key file); nothing "
        "was changed" + _interrupted_rotation(path)
    )


def _interrupted_rotation(path: Path) -> str:
    # rotate-key writes the new key beside the old one and moves it over after the commit: a
    # crash in between leaves the database under the key in the `.new` file
    pending = path.with_name(path.name + ".new")
    if not pending.exists():
        return ""
    return f" ({pending} exists: a key rotation was interrupted; move it over {path})"


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
