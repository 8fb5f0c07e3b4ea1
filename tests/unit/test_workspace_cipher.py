"""The workspace cipher follows a key rotated by another process: it reads the key file (or
the environment's new key) again when a token does not open, keeps the previous key for
tokens read before, never encrypts under a retired key, and is safe across threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from outreach_core.adapters import crypto
from outreach_core.adapters.crypto import WorkspaceCipher
from outreach_core.errors import ConfigError


class Store:
    """What the database holds: one token per table, as `secrets.samples` gives them."""

    def __init__(self, *tokens: bytes) -> None:
        self.tokens = [t.decode() for t in tokens]

    def __call__(self) -> list[str]:
        return list(self.tokens)


def key_file_cipher(data_dir: Path, store: Store) -> WorkspaceCipher:
    data_dir.mkdir(exist_ok=True)
    key = crypto.create_key_file(data_dir)
    return WorkspaceCipher(
        key, secret_key=None, new_secret_key=None, data_dir=data_dir, stored=store
    )


def rotate_file(data_dir: Path) -> Fernet:
    """What rotate-key leaves on disk once done: a new key in the key file."""
    new = Fernet.generate_key()
    crypto.key_file(data_dir).write_bytes(new)
    return Fernet(new)


def test_a_token_under_the_rotated_key_opens_and_the_old_key_is_kept(tmp_path: Path) -> None:
    """Verify decrypt after the key file changed: the new token opens, the cipher encrypts
    with the new key from then on, and a token read before the rotation still opens."""
    store = Store()
    cipher = key_file_cipher(tmp_path, store)
    before = cipher.encrypt(b"old secret")
    store.tokens = [before.decode()]
    new = rotate_file(tmp_path)
    after = new.encrypt(b"new secret")
    store.tokens = [after.decode()]

    assert cipher.decrypt(after) == b"new secret"
    assert cipher.decrypt(before) == b"old secret"  # read just before the rotation committed
    assert new.decrypt(cipher.encrypt(b"third")) == b"third"
    assert cipher.key == crypto.key_file(tmp_path).read_bytes()


def test_a_token_no_key_opens_is_still_refused(tmp_path: Path) -> None:
    """Verify a token under a key found nowhere: InvalidToken, and `crypto.decrypt` turns it
    into a ConfigError without the token or key; the key in memory is unchanged."""
    cipher = key_file_cipher(tmp_path, Store())
    kept = cipher.key
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x")
    with pytest.raises(InvalidToken):
        cipher.decrypt(foreign)
    with pytest.raises(ConfigError, match="cannot be decrypted") as caught:
        crypto.decrypt(cipher, foreign.decode())
    assert foreign.decode() not in str(caught.value) and kept.decode() not in str(caught.value)
    assert cipher.key == kept


def test_the_pending_key_of_a_rotation_opens_before_it_is_moved_over(tmp_path: Path) -> None:
    """Verify the moment between a rotation's commit and its move of `secret.key.new`: the
    database is under the pending key, and the cipher finds it there."""
    cipher = key_file_cipher(tmp_path, Store())
    pending_key = Fernet.generate_key()
    (tmp_path / "secret.key.new").write_bytes(pending_key)
    token = Fernet(pending_key).encrypt(b"committed")
    assert cipher.decrypt(token) == b"committed"
    assert cipher.key == pending_key


def test_encrypt_moves_to_the_key_the_stored_secrets_are_under(tmp_path: Path) -> None:
    """Verify encrypt in a process that decrypted nothing since the rotation: the new secret
    is stored under the key file's new key, not the retired one in memory."""
    store = Store()
    cipher = key_file_cipher(tmp_path, store)
    new = rotate_file(tmp_path)
    store.tokens = [new.encrypt(b"engine").decode(), new.encrypt(b"source").decode()]
    assert new.decrypt(cipher.encrypt(b"fresh")) == b"fresh"


def test_encrypt_refuses_when_no_key_opens_the_stored_secrets(tmp_path: Path) -> None:
    """Verify a process whose environment key was rotated away (OUTREACH_SECRET_KEY cannot
    change under it): encrypt is a ConfigError naming OUTREACH_SECRET_KEY, not a secret
    written under a key nobody has."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    store = Store(Fernet(new).encrypt(b"engine"))
    cipher = WorkspaceCipher(
        old, secret_key=old.decode(), new_secret_key=None, data_dir=tmp_path, stored=store
    )
    with pytest.raises(ConfigError, match="OUTREACH_SECRET_KEY") as caught:
        cipher.encrypt(b"fresh")
    assert "not stored" in str(caught.value) and old.decode() not in str(caught.value)


def test_an_environment_key_follows_to_outreach_new_secret_key(tmp_path: Path) -> None:
    """Verify a process started with OUTREACH_NEW_SECRET_KEY beside OUTREACH_SECRET_KEY: once
    rotate-key moved the secrets to the new key, it decrypts and encrypts with it."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    store = Store(Fernet(old).encrypt(b"engine"))
    cipher = WorkspaceCipher(
        old, secret_key=old.decode(), new_secret_key=new.decode(), data_dir=tmp_path, stored=store
    )
    token = Fernet(new).encrypt(b"engine")
    store.tokens = [token.decode()]
    assert cipher.decrypt(token) == b"engine"
    assert Fernet(new).decrypt(cipher.encrypt(b"fresh")) == b"fresh"


def test_threads_decrypting_across_a_rotation_all_succeed(tmp_path: Path) -> None:
    """Verify 16 threads decrypting tokens under the new key at once, right after the key file
    changed: every one gets its plaintext, and the cipher ends on the new key."""
    cipher = key_file_cipher(tmp_path, Store())
    new = rotate_file(tmp_path)
    tokens = [new.encrypt(f"secret {n}".encode()) for n in range(16)]
    results: dict[int, bytes] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(len(tokens))

    def work(n: int) -> None:
        start.wait()
        try:
            for _ in range(20):
                results[n] = cipher.decrypt(tokens[n])
        except BaseException as exc:  # reported below, with the thread's number
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert results == {n: f"secret {n}".encode() for n in range(len(tokens))}
    assert cipher.key == crypto.key_file(tmp_path).read_bytes()


def test_encrypt_under_the_check_token_follows_it_or_refuses(tmp_path: Path) -> None:
    """Verify `encrypt_under`: with the database's check token under the rotated key the
    secret is encrypted under it (the cipher moved); under a key found nowhere, a ConfigError
    and nothing encrypted."""
    cipher = key_file_cipher(tmp_path, Store())
    new = rotate_file(tmp_path)
    check = new.encrypt(crypto.KEY_CHECK_PLAINTEXT).decode()
    assert new.decrypt(cipher.encrypt_under(check, b"fresh")) == b"fresh"
    assert cipher.key == crypto.key_file(tmp_path).read_bytes()
    foreign = Fernet(Fernet.generate_key()).encrypt(crypto.KEY_CHECK_PLAINTEXT).decode()
    with pytest.raises(ConfigError, match="not stored"):
        cipher.encrypt_under(foreign, b"fresh")
