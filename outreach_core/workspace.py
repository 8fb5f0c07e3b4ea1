"""A workspace: settings, the database and the secret cipher, opened once per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from outreach_core.crypto import load_fernet
from outreach_core.settings import Settings, load_settings
from outreach_core.store import db


@dataclass
class Workspace:
    """What every service function needs; pass it in, never import a global."""

    settings: Settings
    db: Engine
    fernet: Fernet

    def close(self) -> None:
        self.db.dispose()


def open_workspace(settings: Settings | None = None, *, migrate: bool = True) -> Workspace:
    """Open the configured database, applying pending migrations first."""
    settings = settings or load_settings()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = db.create_db_engine(settings.sqlalchemy_url)
    if migrate:
        db.upgrade(engine)
    return Workspace(
        settings=settings,
        db=engine,
        fernet=load_fernet(settings.secret_key, settings.data_dir),
    )


def utcnow() -> datetime:
    """The current time, timezone-aware; the one clock services use by default."""
    return datetime.now(UTC)
