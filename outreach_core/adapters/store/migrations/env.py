"""Alembic environment: migrates the Engine handed over in `config.attributes`."""

from __future__ import annotations

from alembic import context

from outreach_core.adapters.store.tables import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
