"""The send path's hot queries read index ranges, on SQLite and PostgreSQL, whatever the run's size.

Each statement the code runs is explained as built by the code itself (`claim_statement`,
`recently_sent_query`, `waiting_rows_query`), on a ledger of two runs (one sent, one pending)
with statistics gathered, so the planner chooses as it would on a large run: a claim that
sorts the run's pending rows, or an address check that scans the workflow's deliveries, costs
time in proportion to the run and slows a run of a million recipients to a crawl.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries as deliveries_store
from outreach_core.adapters.store import delivery_claims, dns_waits, feedback, in_flight
from outreach_core.adapters.store.tables import deliveries, engines
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.dns_waits import WAITING_PREFIX
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import new_worker_id
from tests.conftest import make_settings
from tests.frozen_runs import frozen_outbox_run

ROWS_PER_RUN = 4000


def _ledger(ws: Workspace, tmp_path: Path, *, analyze: bool = True) -> tuple[int, int, int]:
    """A workflow with a sent run and a pending one of ROWS_PER_RUN deliveries each, a few
    pending rows waiting for DNS; statistics gathered. Returns (workflow, sent run, pending run)."""
    workflow = services.setup_workflow(
        ws,
        name="plans",
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": "a@example.com"}]),
        template=TemplateSource("Hi", None, "Hi"),
        engine_url=f"outbox://{tmp_path}/outbox",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0),
        actor="test",
    )
    now = utcnow()
    run_ids = []
    for status in (DeliveryStatus.SENT, DeliveryStatus.PENDING):
        run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
        run_ids.append(run_id)
        with ws.db.begin() as conn:
            conn.execute(
                deliveries.insert(),
                [
                    {
                        "run_id": run_id,
                        "row_number": n,
                        "email": f"p{n}@d{n % 50}.example",
                        "email_normalized": f"p{n}@d{n % 50}.example",
                        "variables": {},
                        "status": status,
                        "reason": f"{WAITING_PREFIX}timeout" if n % 997 == 0 else None,
                        "attempts": 0,
                        "updated_at": now - timedelta(minutes=n % 600),
                    }
                    for n in range(ROWS_PER_RUN)
                ],
            )
    if analyze:
        with ws.db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return workflow.id, run_ids[0], run_ids[1]


def _plan(conn: Connection, statement: sa.Executable) -> str:
    """The backend's plan of `statement` as one text: EXPLAIN QUERY PLAN on SQLite (one line
    per step), EXPLAIN on PostgreSQL; nothing is executed."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if conn.dialect.name == "sqlite":
        values = [params[name] for name in compiled.positiontup or []]
        args: Any = tuple(v.isoformat() if isinstance(v, datetime) else v for v in values)
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", args)
        return "\n".join(str(row[-1]) for row in rows)
    rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", params)
    return "\n".join(str(row[0]) for row in rows)


def _outer_update(plan: str) -> str:
    """The lines of a SQLite claim's plan that find the rows to update (before the subquery)."""
    return plan.split("LIST SUBQUERY")[0] if "LIST SUBQUERY" in plan else ""


def _candidates(plan: str) -> str:
    """The part of a claim's plan that picks its candidates: on PostgreSQL the materialized
    CTE (the UPDATE then finds those few rows by id, by whichever join its costs favour); on
    SQLite the whole plan."""
    lines = plan.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "CTE claim_candidates"]
    if not starts:
        return plan
    indent = len(lines[starts[0]]) - len(lines[starts[0]].lstrip())
    part = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if len(line) - len(line.lstrip()) <= indent:
            break
        part.append(line)
    return "\n".join(part)


def _scans_whole_table(plan: str) -> bool:
    return (
        "SCAN deliveries" in plan.replace("SCAN TABLE", "SCAN") or "Seq Scan on deliveries" in plan
    )


def test_a_claim_reads_the_first_pending_rows_of_one_index_range(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the claim takes its candidates from ix_deliveries_run_status in id order: no
    sort of the run's pending rows, no scan of the table."""
    _, _, pending_run = _ledger(workspace, tmp_path)
    statement = delivery_claims.claim_statement(pending_run, worker_id="w", limit=500, now=utcnow())
    with workspace.db.connect() as conn:
        whole = _plan(conn, statement)
    plan = _candidates(whole)
    assert "ix_deliveries_status_updated" not in _outer_update(whole), whole
    assert "ix_deliveries_run_status" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    assert not _scans_whole_table(plan), plan


def test_the_recently_sent_check_looks_addresses_up_in_their_index(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the dedupe check of a batch reads ix_deliveries_email_normalized, not the
    deliveries of every run of the workflow."""
    workflow_id, _, pending_run = _ledger(workspace, tmp_path)
    query = delivery_claims.recently_sent_query(
        workflow_id=workflow_id,
        run_id=pending_run,
        keys=[f"p{n}@d{n % 50}.example" for n in range(0, 500, 7)],
        since=utcnow() - timedelta(hours=24),
    )
    with workspace.db.connect() as conn:
        plan = _plan(conn, query)
    assert "ix_deliveries_email_normalized" in plan, plan
    assert not _scans_whole_table(plan), plan


def test_the_rows_waiting_for_dns_are_one_index_range_in_id_order(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the rows waiting for DNS are an index range: the run's pending range of
    ix_deliveries_run_status read in id order (no sort), or the waiting reasons' range of
    ix_deliveries_reason (only the waiting rows, then sorted); never a table scan."""
    _, _, pending_run = _ledger(workspace, tmp_path)
    with workspace.db.connect() as conn:
        plan = _plan(conn, dns_waits.waiting_rows_query(pending_run))
        waiting = dns_waits.waiting_rows(conn, pending_run)
    sorts = "TEMP B-TREE" in plan or "Sort" in plan
    if "ix_deliveries_reason" not in plan:
        assert "ix_deliveries_run_status" in plan and not sorts, plan
    assert not _scans_whole_table(plan), plan
    assert sum(len(rows) for rows in waiting.values()) == len(range(0, ROWS_PER_RUN, 997))


def test_the_complaint_brake_reads_only_the_engines_last_sends(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the complaint brake checked before each batch reads the engine's last sends
    backwards from ix_deliveries_engine_status: no sort of every row the engine sent."""
    _ledger(workspace, tmp_path)
    with workspace.db.begin() as conn:
        engine_id = conn.execute(sa.select(sa.func.min(engines.c.id))).scalar_one()
        conn.execute(
            deliveries.update().values(engine_id=engine_id, sent_at=deliveries.c.updated_at)
        )
        conn.exec_driver_sql("ANALYZE")
    with workspace.db.connect() as conn:
        plan = _plan(conn, feedback.recent_sends_query(engine_id, window=1000))
        sends, _ = feedback.complaint_window(conn, engine_id, window=1000)
    assert "ix_deliveries_engine_status" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    assert sends == 1000


def _generic_plan(conn: Connection, statement: sa.Executable) -> str:
    """PostgreSQL's generic plan of `statement` (the one a driver's prepared statement
    settles on after five runs): planned without its parameters' values."""
    sql = str(statement.compile(dialect=conn.dialect))
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", sql)
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE probe AS {numbered}")
    try:
        nulls = ", ".join("NULL" for _ in names)
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE probe({nulls})"))
    finally:
        conn.exec_driver_sql("DEALLOCATE probe")


def test_per_message_statements_find_their_row_by_id_in_generic_plans(
    postgres_url: str, tmp_path: Path
) -> None:
    """Verify the hand-off and the outcome (run per message or batch, prepared by the driver)
    find their row by primary key, not by reading the `sending` range
    of a status index, also when the statistics predate the batch's claim."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    try:
        _, _, pending_run = _ledger(ws, tmp_path, analyze=False)  # as right after a freeze
        with ws.db.begin() as conn:
            first = sa.select(deliveries.c.id).where(deliveries.c.run_id == pending_run).limit(500)
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(first))
                .values(status=DeliveryStatus.SENDING, claimed_by="w")
            )
        statements = {
            "hand-off": in_flight._HAND_OFF,
            "outcome": deliveries_store._RECORD_MANY,
        }
        with ws.db.connect() as conn:
            plans = {name: _generic_plan(conn, s) for name, s in statements.items()}
    finally:
        ws.close()
    for name, plan in plans.items():
        assert "pk_deliveries" in plan and "ix_deliveries_status" not in plan, (name, plan)


def test_a_large_freeze_leaves_statistics_for_the_planner(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a freeze of at least STATISTICS_AFTER rows on PostgreSQL analyzes deliveries
    (the planner's row count is the run's), and a smaller one leaves the statistics alone."""
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    monkeypatch.setattr(deliveries_store, "STATISTICS_AFTER", 30)
    try:
        counted = [_planner_rows_after_freezing(ws, tmp_path, rows) for rows in (20, 40)]
    finally:
        ws.close()
    assert counted[0] != 20, "a freeze of 20 rows asked for statistics"
    assert counted[1] == 60, counted


def _planner_rows_after_freezing(ws: Workspace, tmp_path: Path, rows: int) -> float:
    """Freeze a run of a new workflow of `rows` recipients; pg_class.reltuples of deliveries."""
    emails = [f"s{rows}.{n}@example.com" for n in range(rows)]
    frozen_outbox_run(ws, tmp_path, name=f"stats{rows}", emails=emails, worker_id=new_worker_id())
    with ws.db.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass"
        ).scalar_one()
