"""Saved SQL sources: the URL is stored encrypted and shown masked; the query is checked first."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core.adapters.store.tables import sql_sources
from outreach_core.adapters.workspace import Workspace
from outreach_core.errors import InputError
from outreach_core.services import sources


def test_saved_source_keeps_the_password_encrypted_and_runs(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the stored row never holds the plain URL, the display is masked, and it runs."""
    crm = tmp_path / "crm.db"
    engine = sa.create_engine(f"sqlite:///{crm}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (email TEXT, region TEXT)"))
        conn.execute(sa.text("INSERT INTO people VALUES ('a@x.example', 'north')"))
    engine.dispose()
    url = f"sqlite:///{crm}"
    saved = sources.save_source(
        workspace,
        name="crm",
        url=url,
        query="SELECT email FROM people WHERE region = :region",
        values={"region": "north"},
        actor="test",
    )
    with workspace.db.connect() as conn:
        stored = conn.execute(sa.select(sql_sources)).mappings().one()
    assert url not in stored["url_encrypted"]
    assert saved.display_url == url  # no password to hide in a file URL
    result = sources.run_source(workspace, saved.id)
    assert result.rows == [{"email": "a@x.example"}]
    parsed = sources.as_parsed_file(result, source="crm", email_column=None)
    assert (parsed.email_column, len(parsed.rows)) == ("email", 1)


def test_source_password_is_masked_for_display(workspace: Workspace) -> None:
    """Verify a PostgreSQL URL's password is shown as *** and never stored in clear."""
    url = "postgresql+psycopg://reader:s3cret@db.internal:5432/crm"
    saved = sources.save_source(
        workspace, name="pg", url=url, query="SELECT 1", values={}, actor="test"
    )
    assert saved.display_url == "postgresql+psycopg://reader:***@db.internal:5432/crm"
    with workspace.db.connect() as conn:
        stored = conn.execute(sa.select(sql_sources)).mappings().one()
    assert "s3cret" not in " ".join(str(v) for v in stored.values())


def test_saving_a_writing_query_is_refused(workspace: Workspace) -> None:
    """Verify a source whose query writes is not saved."""
    with pytest.raises(InputError, match="starts with DELETE"):
        sources.save_source(
            workspace,
            name="bad",
            url="sqlite:///x.db",
            query="DELETE FROM t",
            values={},
            actor="test",
        )
    assert sources.list_sources(workspace) == []
