"""The freeze of a SQL audience, read and written in chunks (small chunks here, so that a few
hundred rows cross several): abort writes nothing, duplicates are found across chunks,
suppressions apply in every chunk, the row cap stops the read early, and the run's heartbeat
stays fresh during a long freeze. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_audiences import acquired_run, fill_people, set_source, source_url, sql_workflow

from outreach_core.adapters import sql_stream
from outreach_core.adapters.store import audiences, deliveries, runs, suppressions
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import RenderErrorPolicy, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.errors import SourceError
from outreach_core.services.sending import context, freeze
from outreach_core.services.sending.freeze import freeze_audience

from conftest import make_settings

CHUNK = 50
SKIP = SendOptions(rate=0, skip_mx=True)
ABORT = SendOptions(rate=0, skip_mx=True, on_render_error=RenderErrorPolicy.ABORT)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freeze, "FREEZE_CHUNK", CHUNK)
    monkeypatch.setattr(sql_stream, "CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(audiences, "READ_CHUNK", CHUNK)


def ledger(ws: Workspace, run_id: int) -> dict[int, tuple[DeliveryStatus, str]]:
    with ws.db.connect() as conn:
        found = deliveries.list_deliveries(conn, run_id)
    return {d.row_number: (d.status, d.reason or "") for d in found}


def test_abort_with_a_render_error_in_the_last_chunk_writes_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a row that does not render in the last chunk fails the run under abort with the
    reason naming it, after two chunks were written: they are rolled back, nothing frozen."""
    url = source_url(workspace, tmp_path)
    fill_people(url, 130, emails={}, names={128: ""})
    workflow_id, _ = sql_workflow(workspace, tmp_path, url, ABORT)
    run = acquired_run(workspace, workflow_id)

    assert not freeze_audience(workspace, run)

    with workspace.db.connect() as conn:
        failed = runs.get_run(conn, run.id)
    assert failed.status is RunStatus.FAILED
    assert (failed.status_reason or "").startswith(
        "on-render-error abort: 1 rows do not render, nothing was sent: row 128: render_error"
    )
    assert ledger(workspace, run.id) == {}


def test_duplicates_and_suppressions_across_chunks(workspace: Workspace, tmp_path: Path) -> None:
    """Verify an address repeated two and three chunks later is a duplicate naming its first
    row, and a suppressed address in the third chunk is skipped; every row is frozen once."""
    url = source_url(workspace, tmp_path)
    same = "Same@Example.com"
    fill_people(url, 130, emails={10: same, 75: same.lower(), 130: same}, names={})
    with workspace.db.begin() as conn:
        suppressions.add_suppression(
            conn, "person120@example.com", reason="unsubscribed", now=datetime.now(UTC)
        )
    workflow_id, _ = sql_workflow(workspace, tmp_path, url, SKIP)
    run = acquired_run(workspace, workflow_id)

    assert freeze_audience(workspace, run)

    frozen = ledger(workspace, run.id)
    assert sorted(frozen) == list(range(1, 131))
    assert frozen[10] == (DeliveryStatus.PENDING, "")
    for row in (75, 130):
        assert frozen[row] == (DeliveryStatus.SKIPPED, "duplicate: same address as row 10")
    assert frozen[120][0] is DeliveryStatus.SKIPPED
    assert frozen[120][1].startswith("suppressed:")
    skipped = {n for n, (status, _) in frozen.items() if status is DeliveryStatus.SKIPPED}
    assert skipped == {75, 120, 130}
    with workspace.db.connect() as conn:
        assert runs.get_run(conn, run.id).status is RunStatus.SENDING


def failing_past(dialect: str, row: int) -> str:
    """A query whose rows past `row` fail when the database computes them."""
    boom = (
        f"CASE WHEN n > {row} THEN abs(-9223372036854775808) ELSE n END"
        if dialect == "sqlite"
        else f"CASE WHEN n > {row} THEN 1 / (n - n) ELSE n END"
    )
    return f"SELECT {boom} AS n, email, name FROM people WHERE n <= CAST(:upto AS INTEGER)"


def test_the_row_cap_stops_the_read_early(workspace: Workspace, tmp_path: Path) -> None:
    """Verify a source above its row cap fails the run naming the cap and the setting, and
    that the read stopped at the cap: the rows further on, which would fail, were never
    computed; nothing is frozen."""
    url = source_url(workspace, tmp_path)
    fill_people(url, 400, emails={}, names={})
    query = failing_past(workspace.db.dialect.name, 250)
    workflow_id, _ = sql_workflow(workspace, tmp_path, url, SKIP, query=query)
    set_source(workspace, url, query=query, row_cap=120)
    run = acquired_run(workspace, workflow_id)

    assert not freeze_audience(workspace, run)

    with workspace.db.connect() as conn:
        reason = runs.get_run(conn, run.id).status_reason or ""
    assert reason.startswith("audience query failed: the query returns more than the row cap")
    assert "row cap of 120 rows" in reason and "`row_cap` setting" in reason
    assert ledger(workspace, run.id) == {}


def test_a_stream_hands_out_its_first_chunk_before_later_rows_are_computed(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the source is read lazily: the first chunk arrives although a later row fails,
    and that row's error comes, as a SourceError, only when its chunk is fetched."""
    url = source_url(workspace, tmp_path)
    fill_people(url, 400, emails={}, names={})
    query = failing_past(workspace.db.dialect.name, 250)
    with sql_stream.stream_query(
        url, query, values={"upto": "400"}, run_date=datetime.now(UTC)
    ) as stream:
        chunks = stream.chunks()
        assert [row["n"] for row in next(chunks)] == [str(n) for n in range(1, CHUNK + 1)]
        with pytest.raises(SourceError):
            list(chunks)
        # up to the failing row's chunk (SQLite steps one row ahead of what it hands out)
        assert 250 - CHUNK <= stream.read <= 250


def test_the_heartbeat_is_refreshed_during_a_slow_freeze(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that while a slow PostgreSQL source is frozen, other connections see the run's
    heartbeat move on (so no worker takes it over as orphaned) before the run is SENDING."""
    monkeypatch.setattr(context, "HEARTBEAT_INTERVAL_S", 0.05)
    ws = open_workspace(make_settings(tmp_path, postgres_url))
    try:
        url = source_url(ws, tmp_path)
        fill_people(url, 300, emails={}, names={})
        slow = (
            "SELECT n, email, name, pg_sleep(0.003) AS pause FROM people "
            "WHERE n <= CAST(:upto AS INTEGER) ORDER BY n"
        )
        workflow_id, _ = sql_workflow(ws, tmp_path, url, SKIP, query=slow)
        run = acquired_run(ws, workflow_id)
        assert run.heartbeat_at is not None
        result: list[bool] = []
        worker = threading.Thread(target=lambda: result.append(freeze_audience(ws, run)))
        seen_while_freezing = []
        worker.start()
        while worker.is_alive():
            with ws.db.connect() as conn:
                now = runs.get_run(conn, run.id)
            if now.status is RunStatus.INITIALIZING and now.heartbeat_at != run.heartbeat_at:
                seen_while_freezing.append(now.heartbeat_at)
            time.sleep(0.02)
        worker.join()
        assert result == [True]
        assert seen_while_freezing, "the heartbeat did not move during the freeze"
        with ws.db.connect() as conn:
            assert deliveries.counts(conn, run.id).total == 300
            assert conn.execute(sa.text("SELECT count(*) FROM people")).scalar() == 300
    finally:
        ws.close()
