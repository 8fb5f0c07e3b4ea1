"""A workflow whose audience is a saved SQL query: each run re-queries it with `:last_run_at`
and `:run_date`; a failed query fails the run and does not move `:last_run_at`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Run, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import schedules, sources
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

ACTOR = "test"
QUERY = (
    "SELECT email, name, :run_date AS run_day FROM contacts "
    "WHERE added_at > :last_run_at ORDER BY email"
)


def add_contacts(crm: Path, *emails: str, at: str | None = None) -> None:
    stamp = at or datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(crm) as conn:
        conn.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?)", [(e, e.split("@")[0], stamp) for e in emails]
        )


def run_once(ws: Workspace, workflow_id: int) -> tuple[Run, set[str]]:
    run_id = schedules.trigger_workflow(ws, workflow_id=workflow_id, actor=ACTOR)
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    with ws.db.connect() as conn:
        frozen = {d.email for d in deliveries.list_deliveries(conn, run_id)}
    return run, frozen


def test_each_run_requeries_since_the_last_completed_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify run 1 gets everyone, run 2 only contacts added since run 1, a broken query fails
    run 3 with the reason, and run 4 gets everyone added since run 2 (not since run 3)."""
    crm = tmp_path / "crm.db"
    with sqlite3.connect(crm) as conn:
        conn.execute("CREATE TABLE contacts (email TEXT, name TEXT, added_at TEXT)")
    add_contacts(
        crm, "ann@example.com", "bob@example.com", "cy@example.com", at="2026-01-01 00:00:00"
    )
    source = sources.save_source(
        workspace, name="crm", url=f"sqlite:///{crm}", query=QUERY, values={}, actor=ACTOR
    )
    audience = sources.save_recurring_audience(workspace, source.id, name="CRM", actor=ACTOR)
    assert audience.sql_source_id == source.id and audience.row_count == 3
    template = services.save_template(
        workspace, "hello", TemplateSource("Hi {{ name }}", None, "Day {{ run_day }}"), actor=ACTOR
    )
    engine = services.save_engine(
        workspace, name="outbox", url=f"outbox://{tmp_path}/outbox",
        from_email="team@example.com", from_name="Team", actor=ACTOR,
    )  # fmt: skip
    workflow = services.create_workflow(
        workspace, name="new contacts", audience_id=audience.id, template_id=template.id,
        engine_id=engine.id, options=SendOptions(rate=0, skip_mx=True), actor=ACTOR,
    )  # fmt: skip

    first, frozen = run_once(workspace, workflow.id)
    assert first.status is RunStatus.COMPLETED
    assert frozen == {"ann@example.com", "bob@example.com", "cy@example.com"}
    with workspace.db.connect() as conn:
        [one] = deliveries.list_deliveries(conn, first.id, limit=1)
    assert one.variables["run_day"] == first.created_at.date().isoformat()

    add_contacts(crm, "dee@example.com", "eve@example.com")
    second, frozen = run_once(workspace, workflow.id)
    assert second.status is RunStatus.COMPLETED
    assert frozen == {"dee@example.com", "eve@example.com"}

    add_contacts(crm, "fay@example.com")
    with sqlite3.connect(crm) as conn:
        conn.execute("ALTER TABLE contacts RENAME TO people")
    third, frozen = run_once(workspace, workflow.id)
    assert third.status is RunStatus.FAILED
    assert "audience query failed" in (third.status_reason or "")
    assert "no such table: contacts" in (third.status_reason or "")
    assert frozen == set()

    with sqlite3.connect(crm) as conn:
        conn.execute("ALTER TABLE people RENAME TO contacts")
    add_contacts(crm, "gus@example.com")
    fourth, frozen = run_once(workspace, workflow.id)
    assert fourth.status is RunStatus.COMPLETED
    # fay was not lost with run 3; dee and eve may be selected again when they were stamped in
    # the second run 2 started (`:last_run_at` is truncated to the second), never mailed again
    assert {"fay@example.com", "gus@example.com"} <= frozen
    assert frozen <= {"dee@example.com", "eve@example.com", "fay@example.com", "gus@example.com"}
    with workspace.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, fourth.id)}
    sent = {e for e, d in ledger.items() if d.status is DeliveryStatus.SENT}
    assert sent == {"fay@example.com", "gus@example.com"}
    assert all(
        (d.reason or "").startswith("sent_recently") for e, d in ledger.items() if e not in sent
    )
