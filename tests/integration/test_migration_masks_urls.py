"""Migration 0011 on SQLite and PostgreSQL: URLs stored before every URL was masked (engine and
SQL source display forms, CLI engine names, the audit details of their saves) lose the
passwords they held, and nothing else changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from outreach_core.adapters.store import db

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LEAKED = "8421#Kx9zz"
ENGINE_URL = f"smtp://bob:{LEAKED}@mail.example.com:587"
SOURCE_URL = "postgresql://reader@db.example.com/crm?sslmode=require&password=s3cretPW"


def test_stored_urls_are_masked_by_the_migration(db_url: str, tmp_path: Path) -> None:
    """Verify rows written at revision 0010 with passwords in display fields, names and audit
    details come out of the upgrade masked (names still unique), and other rows unchanged."""
    (tmp_path / "data").mkdir(exist_ok=True)
    engine = db.create_db_engine(db_url)
    config = db.alembic_config(engine)
    command.upgrade(config, "0010")
    meta = sa.MetaData()
    meta.reflect(engine, only=["engines", "sql_sources", "audit_log"])
    engines, sources, audit = (meta.tables[n] for n in ("engines", "sql_sources", "audit_log"))
    common = {"from_email": "a@example.com", "from_name": "A", "created_at": NOW}
    with engine.begin() as conn:
        conn.execute(
            engines.insert(),
            [
                {"id": 1, "name": f"cli {ENGINE_URL}", "kind": "smtp", "url_encrypted": "x",
                 "display_url": ENGINE_URL, **common},
                {"id": 2, "name": "cli smtp://bob:***@mail.example.com:587", "kind": "smtp",
                 "url_encrypted": "y", "display_url": "smtp://bob:***@mail.example.com:587",
                 **common},
                {"id": 3, "name": "Local outbox", "kind": "outbox", "url_encrypted": "z",
                 "display_url": "outbox:///var/outreach/outbox", **common},
            ],
        )  # fmt: skip
        conn.execute(
            sources.insert().values(
                id=1, name="crm", url_encrypted="x", display_url=SOURCE_URL, query="SELECT 1",
                parameters={}, row_cap=10, timeout_s=30, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
        conn.execute(
            audit.insert(),
            [
                {"at": NOW, "actor": "cli", "action": "engine.save", "subject": "engine 1",
                 "detail": {"name": f"cli {ENGINE_URL}", "url": ENGINE_URL}},
                {"at": NOW, "actor": "ann", "action": "sql_source.save", "subject": "sql source 1",
                 "detail": {"name": "crm", "url": SOURCE_URL}},
                {"at": NOW, "actor": "ann", "action": "run.queue", "subject": "run 1",
                 "detail": {"workflow": "w", "trigger": "manual"}},
            ],
        )  # fmt: skip

    command.upgrade(config, "head")

    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(engines)).all()}
        source = conn.execute(sa.select(sources)).one()
        details = [r.detail for r in conn.execute(sa.select(audit).order_by(audit.c.id))]
    engine.dispose()
    everything = repr([tuple(r) for r in rows.values()]) + repr(tuple(source)) + repr(details)
    assert LEAKED not in everything and "s3cretPW" not in everything
    assert rows[1].display_url == "smtp://bob:***@mail.example.com:587"
    # the first engine's name, once masked, is the second's: it stays apart by its id
    assert rows[1].name == "cli smtp://bob:***@mail.example.com:587 #1"
    assert rows[2].name == "cli smtp://bob:***@mail.example.com:587"
    assert rows[3].name == "Local outbox"
    assert rows[3].display_url == "outbox:///var/outreach/outbox"
    assert source.display_url == (
        "postgresql://reader@db.example.com/crm?sslmode=require&password=***"
    )
    assert details[0]["url"] == "smtp://bob:***@mail.example.com:587"
    assert details[1]["url"].endswith("password=***")
    assert details[2] == {"workflow": "w", "trigger": "manual"}
