"""A workspace: settings, the database and the secret cipher, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import Connection, Engine, make_url

from outreach_core.adapters import crypto
from outreach_core.adapters.file_modes import private_dir
from outreach_core.adapters.settings import Settings, load_settings
from outreach_core.adapters.store import db, secrets
from outreach_core.errors import ConfigError


@dataclass
class Workspace:
    """What every service function needs; pass it in, never import a global."""

    settings: Settings
    db: Engine
    #: follows `rotate-key` run by another process (`crypto.WorkspaceCipher`)
    fernet: crypto.WorkspaceCipher

    def close(self) -> None:
        self.db.dispose()

    def encrypt(self, conn: Connection, plaintext: str) -> str:
        """Encrypt a secret to store in `conn`'s transaction, under the key the stored secrets
        are under when it commits, even while another process runs rotate-key.

        The key check row is locked first (`secrets.lock_key_check`): a rotation under way
        makes this wait for its commit, then this process moves to the new key; a rotation
        starting meanwhile waits for this commit, then re-encrypts this secret with the rest.
        """
        check = secrets.lock_key_check(conn)
        if check is None:  # the first secret since the check row was made: the key it is under
            check = crypto.encrypt(self.fernet, crypto.KEY_CHECK_PLAINTEXT.decode())
            secrets.set_key_check(conn, check)
        return self.fernet.encrypt_under(check, plaintext.encode()).decode()


def open_workspace(settings: Settings | None = None, *, migrate: bool = True) -> Workspace:
    """Open the configured database, applying pending migrations first.

    A database that cannot be reached is a ConfigError naming it without its password; so is
    a database holding secrets whose key is missing or wrong (`open_cipher`).
    """
    settings = settings or load_settings()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.data_dir.is_dir():  # created 0700 by whoever first needs it (key, database)
        private_dir(settings.data_dir)
    engine = db.create_db_engine(settings.sqlalchemy_url)
    try:
        if migrate:
            db.upgrade(engine)
        else:
            with engine.connect():
                pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        shown = make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ConfigError(f"cannot open the database {shown}: {detail}") from None
    try:
        fernet = open_cipher(settings, engine)
    except BaseException:
        engine.dispose()
        raise
    return Workspace(settings=settings, db=engine, fernet=fernet)


def open_cipher(settings: Settings, engine: Engine) -> crypto.WorkspaceCipher:
    """The cipher of the workspace's secrets, checked against the database before any use.

    A new key is made only while the database holds no secret (a new workspace). With
    secrets stored and no key, or a key that does not open one stored secret per table, it
    is a ConfigError naming the key file and OUTREACH_SECRET_KEY: every command, the daemon
    and the dashboard refuse before changing anything, rather than fail halfway through a
    run or encrypt new secrets under a key the old ones do not share. Once open, the cipher
    follows a rotation by another process (it reads the key again when the stored secrets no
    longer open with the key in memory).
    """
    secret = crypto.find_secret(settings.secret_key, settings.data_dir)
    with engine.connect() as conn:
        stored = secrets.samples(conn)
    what = "encrypted secrets (" + ", ".join(f"{n} {t}" for t, (n, _) in stored.items()) + ")"
    if secret is None:
        if stored:
            raise ConfigError(crypto.missing_key_message(settings.data_dir, what))
        secret = crypto.create_key_file(settings.data_dir)
    fernet = Fernet(secret)
    for _count, token in stored.values():
        try:
            fernet.decrypt(token.encode())
        except InvalidToken:
            raise ConfigError(
                crypto.wrong_key_message(settings.secret_key, settings.data_dir, what)
            ) from None

    def stored() -> list[str]:
        with engine.connect() as conn:
            return [token for _count, token in secrets.samples(conn).values()]

    return crypto.WorkspaceCipher(
        secret,
        secret_key=settings.secret_key,
        new_secret_key=settings.new_secret_key,
        data_dir=settings.data_dir,
        stored=stored,
    )


def start_process(settings: Settings | None = None) -> Workspace:
    """What the CLI and the daemon do first: read settings, set up logging, open the store."""
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return open_workspace(settings)
