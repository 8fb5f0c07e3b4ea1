"""Secrets at rest: Fernet encryption with the key from settings or a 0600 key file.

A running process follows `rotate-key` by itself (`WorkspaceCipher`): nothing to restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from outreach_core.adapters.file_modes import private_dir, private_file
from outreach_core.errors import ConfigError

KEY_FILE_NAME = "secret.key"
#: where rotate-key writes the new key before the database changes (moved over after the commit)
PENDING_SUFFIX = ".new"
#: keys a process still decrypts with after it moved to a newer one: a token read just before
#: a rotation committed still opens when it is decrypted just after
KEPT_KEYS = 3

#: what the database's key check token holds: no secret, it only shows which key opens it
KEY_CHECK_PLAINTEXT = b"outreach secret key check"

log = logging.getLogger("outreach.crypto")


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
    pending = path.with_name(path.name + PENDING_SUFFIX)
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


class Cipher(Protocol):
    """What encrypts and decrypts stored secrets: a Fernet, or the workspace's cipher."""

    def encrypt(self, data: bytes) -> bytes: ...

    def decrypt(self, token: bytes | str, ttl: int | None = None) -> bytes: ...


def encrypt(fernet: Cipher, plaintext: str) -> str:
    """Encrypt a secret for storage."""
    return fernet.encrypt(plaintext.encode()).decode()


def decrypt(fernet: Cipher, token: str) -> str:
    """Decrypt a stored secret; a wrong key is a ConfigError, never a traceback."""
    try:
        return fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        raise ConfigError(
            "a stored secret cannot be decrypted with the key this process holds, nor with "
            "the key file or OUTREACH_SECRET_KEY as they are now: restore the key it was "
            "encrypted with"
        ) from None


def candidate_keys(
    secret_key: str | None, new_secret_key: str | None, data_dir: Path
) -> list[bytes]:
    """The keys a running process may have moved to, read again now: a rotation's pending
    `secret.key.new` (the database is under it from the rotation's commit until the file is
    moved over), the key file (or OUTREACH_SECRET_KEY), and OUTREACH_NEW_SECRET_KEY. Never
    raises: a key file being replaced or unreadable is left out; the caller checks each key
    against the stored secrets before using it."""
    read: list[bytes] = []
    if not secret_key:
        # the pending file before the key file: rotate-key moves the one over the other, and
        # read in this order one of the two reads sees the new key
        with contextlib.suppress(OSError):  # no rotation under way, or it just finished
            read.append(key_file(data_dir).with_name(KEY_FILE_NAME + PENDING_SUFFIX).read_bytes())
    try:
        current = find_secret(secret_key, data_dir)
    except ConfigError:  # a key file being rewritten, or not a key: the others may do
        current = None
    if current:
        read.append(current)
    if new_secret_key:
        read.append(new_secret_key.encode())
    found: list[bytes] = []
    for key in read:
        try:
            Fernet(key.strip())
        except ValueError:
            continue
        found.append(key.strip())
    return list(dict.fromkeys(found))


def _opens(fernet: Fernet | MultiFernet, token: bytes | str) -> bool:
    try:
        fernet.decrypt(token)
    except InvalidToken:
        return False
    return True


class WorkspaceCipher:
    """The cipher of a workspace's secrets, which follows `rotate-key` in a running process.

    A daemon or the dashboard holds the key in memory; rotate-key re-encrypts every stored
    secret under a new key and puts that key in the key file. A token the keys in memory do not
    open makes the process read the key again (`candidate_keys`) and move to the first key that
    opens it, keeping the previous ones for tokens read before the rotation. Before encrypting,
    the database's key check token (`encrypt_under`, what `Workspace.encrypt` uses) or else the
    stored secrets (`stored`: a sample per table) are checked the same way, so a process never
    stores a new secret under a retired key; when no key opens them it is a ConfigError.
    Thread-safe: the dashboard's sessions and a daemon's threads share one.
    """

    def __init__(
        self,
        key: bytes,
        *,
        secret_key: str | None,
        new_secret_key: str | None,
        data_dir: Path,
        stored: Callable[[], list[str]],
    ) -> None:
        self._secret_key, self._new_secret_key = secret_key, new_secret_key
        self._data_dir, self._stored = data_dir, stored
        self._lock = threading.Lock()
        self._keys: tuple[bytes, ...] = ()
        self._use(key)

    @property
    def key(self) -> bytes:
        """The key new secrets are encrypted with."""
        return self._keys[0]

    def _use(self, key: bytes) -> None:
        # one tuple and one MultiFernet swapped in whole: readers never see half a change
        keys = (key, *(k for k in self._keys if k != key))[:KEPT_KEYS]
        self._primary = Fernet(key)
        self._all = MultiFernet([Fernet(k) for k in keys])
        self._keys = keys

    def adopt(self, key: bytes) -> None:
        """Encrypt with `key` from now on (this process rotated the key itself)."""
        with self._lock:
            self._use(key)

    def decrypt(self, token: bytes | str, ttl: int | None = None) -> bytes:
        """Decrypt with the keys in memory, else with the key read again (InvalidToken when
        no key opens it)."""
        try:
            return self._all.decrypt(token, ttl)
        except InvalidToken:
            if not self._follow([token], primary=False):
                raise
        return self._all.decrypt(token, ttl)

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt with the key the stored secrets are under now."""
        tokens = self._stored()
        if tokens and not all(_opens(self._primary, t) for t in tokens):
            if not self._follow(tokens, primary=True):
                raise ConfigError(
                    wrong_key_message(self._secret_key, self._data_dir, "secrets")
                    + "; the new secret was not stored"
                )
        elif not tokens:  # nothing stored to check against: the key file as it is now
            with contextlib.suppress(ConfigError):
                current = find_secret(self._secret_key, self._data_dir)
                if current and current != self.key:
                    self.adopt(current)
        return self._primary.encrypt(data)

    def encrypt_under(self, check: str, data: bytes) -> bytes:
        """Encrypt with the key that opens `check` (the database's key check token, locked
        by the caller's transaction), moving to it first when another process rotated the key;
        a ConfigError when no key opens it."""
        for _ in range(KEPT_KEYS):  # another thread may move the key between two lines
            primary = self._primary
            if _opens(primary, check):
                return primary.encrypt(data)
            if not self._follow([check], primary=True):
                break
        raise ConfigError(
            wrong_key_message(self._secret_key, self._data_dir, "secrets")
            + "; the new secret was not stored"
        )

    def _follow(self, tokens: Sequence[bytes | str], *, primary: bool) -> bool:
        """Move to a key that opens every one of `tokens` (with `primary`, the key to encrypt
        with must open them, not only a kept one); False when none does."""
        with self._lock:
            if all(_opens(self._primary if primary else self._all, t) for t in tokens):
                return True  # another thread moved on meanwhile
            for key in candidate_keys(self._secret_key, self._new_secret_key, self._data_dir):
                fernet = Fernet(key)
                if key != self.key and all(_opens(fernet, t) for t in tokens):
                    self._use(key)
                    log.warning(
                        "the secret key was rotated (rotate-key): this process now uses the new key"
                    )
                    return True
        return False
