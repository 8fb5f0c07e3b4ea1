"""A workspace: settings, the database and the secret cipher, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine, make_url

from outreach_core.adapters.crypto import load_fernet
from outreach_core.adapters.file_modes import private_dir
from outreach_core.adapters.settings import Settings, load_settings
from outreach_core.adapters.store import db
from outreach_core.errors import ConfigError


@dataclass
class Workspace:
    """What every service function needs; pass it in, never import a global."""

    settings: Settings
    db: Engine
    fernet: Fernet

    def close(self) -> None:
        self.db.dispose()


def open_workspace(settings: Settings | None = None, *, migrate: bool = True) -> Workspace:
    """Open the configured database, applying pending migrations first.

    A database that cannot be reached is a ConfigError naming it without its password.
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
    return Workspace(
        settings=settings,
        db=engine,
        fernet=load_fernet(settings.secret_key, settings.data_dir),
    )


def start_process(settings: Settings | None = None) -> Workspace:
    """What the CLI and the daemon do first: read settings, set up logging, open the store."""
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return open_workspace(settings)
