"""Schedules in the store, on SQLite and PostgreSQL: claiming once, missed slots, send windows,
triggers inside the dedupe window, daemon heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_store import in_threads, seed_workflow

from outreach_core.adapters.store import daemons, deliveries, runs, schedules
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.cadence import Cadence, CadenceKind, MissedSlotPolicy
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.entrypoints.daemon import claim_schedules, health, registered
from outreach_core.errors import InputError
from outreach_core.services import schedules as scheduler
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

ACTOR = "test"
DAILY_9 = Cadence(kind=CadenceKind.DAILY, at="09:00")


def make_schedule(
    ws: Workspace,
    workflow: Workflow,
    *,
    due: datetime,
    cadence: Cadence = DAILY_9,
    **extra: object,
) -> int:
    """A schedule whose next run is `due` (in the past: due now)."""
    saved = scheduler.save_schedule(
        ws,
        scheduler.ScheduleInput(
            workflow_id=workflow.id, cadence=cadence, timezone="America/New_York", **extra
        ),
        actor=ACTOR,
    )
    with ws.db.begin() as conn:
        schedules.update_schedule(conn, saved.id, next_run_at=due)
    return saved.id


def get(ws: Workspace, schedule_id: int) -> schedules.Schedule:
    with ws.db.connect() as conn:
        return schedules.get_schedule(conn, schedule_id)


def test_a_due_schedule_creates_one_run_and_advances(workspace: Workspace, tmp_path: Path) -> None:
    """Verify claiming creates a QUEUED run and moves next_run_at to the next future slot;
    claiming again creates nothing."""
    workflow = seed_workflow(workspace, tmp_path)
    schedule_id = make_schedule(workspace, workflow, due=utcnow() - timedelta(seconds=5))
    first = claim_schedules(workspace)
    assert [c.schedule_id for c in first] == [schedule_id]
    assert first[0].run_id is not None
    after = get(workspace, schedule_id)
    assert after.next_run_at > utcnow()
    assert after.last_run_id == first[0].run_id
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, first[0].run_id)
    assert run.status is RunStatus.QUEUED and run.trigger == "schedule"
    assert claim_schedules(workspace) == []


def test_concurrent_claimers_run_each_schedule_once(workspace: Workspace, tmp_path: Path) -> None:
    """Verify four claimers racing over ten due schedules create exactly ten runs, one each."""
    workflow = seed_workflow(workspace, tmp_path)
    ids = [
        make_schedule(workspace, workflow, due=utcnow() - timedelta(seconds=n)) for n in range(10)
    ]
    results = in_threads(4, lambda _i: claim_schedules(workspace))
    claimed = [c for found in results for c in found]
    assert sorted(c.schedule_id for c in claimed) == sorted(ids)
    assert all(c.run_id is not None for c in claimed)
    with workspace.db.connect() as conn:
        scheduled = [r for r in runs.list_runs(conn) if r.trigger == "schedule"]
    assert len(scheduled) == 10


def test_downtime_under_skip_creates_no_run(workspace: Workspace, tmp_path: Path) -> None:
    """Verify a schedule due three days ago under skip advances without a run and says why."""
    workflow = seed_workflow(workspace, tmp_path)
    schedule_id = make_schedule(workspace, workflow, due=utcnow() - timedelta(days=3))
    [claimed] = claim_schedules(workspace)
    assert claimed.run_id is None
    assert "skipped by policy" in claimed.note
    assert get(workspace, schedule_id).next_run_at > utcnow()


def test_downtime_under_run_late_creates_exactly_one_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify every-hour missed for three days runs once under run-late (window 2 h)."""
    workflow = seed_workflow(workspace, tmp_path)
    make_schedule(
        workspace,
        workflow,
        due=utcnow() - timedelta(days=3),
        cadence=Cadence(kind=CadenceKind.HOURS, interval=1),
        missed_policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=2,
    )
    [claimed] = claim_schedules(workspace)
    assert claimed.run_id is not None
    assert claim_schedules(workspace) == []


def test_disabled_schedule_is_not_claimed_and_enabling_skips_the_past(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a disabled due schedule stays put; enabling moves it to the next future slot."""
    workflow = seed_workflow(workspace, tmp_path)
    schedule_id = make_schedule(workspace, workflow, due=utcnow() - timedelta(hours=1))
    scheduler.set_enabled(workspace, schedule_id, False, actor=ACTOR)
    assert claim_schedules(workspace) == []
    enabled = scheduler.set_enabled(workspace, schedule_id, True, actor=ACTOR)
    assert enabled.next_run_at > utcnow()
    assert claim_schedules(workspace) == []


def test_bad_input_names_the_field(workspace: Workspace, tmp_path: Path) -> None:
    """Verify an unknown zone, a malformed window and run-late without hours are refused."""
    workflow = seed_workflow(workspace, tmp_path)
    for extra, message in [
        ({"timezone": "Mars/Base"}, "time zone 'Mars/Base'"),
        ({"send_window": "9-5"}, "HH:MM-HH:MM"),
        ({"missed_policy": MissedSlotPolicy.RUN_LATE}, "late window"),
    ]:
        data = {"workflow_id": workflow.id, "cadence": DAILY_9} | extra
        with pytest.raises(InputError, match=message):
            scheduler.save_schedule(workspace, scheduler.ScheduleInput(**data), actor=ACTOR)


def test_run_outside_its_send_window_pauses_until_the_next_opening(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a scheduled run started outside its window sends nothing and pauses with
    resume_at at the window's next start."""
    workflow = seed_workflow(workspace, tmp_path, rows=5)
    now = utcnow()
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    schedule_id = make_schedule(
        workspace, workflow, due=now, send_window=f"{start:%H:%M}-{end:%H:%M}"
    )
    with workspace.db.begin() as conn:
        schedules.update_schedule(conn, schedule_id, timezone="UTC")
    run_id = scheduler.run_schedule_now(workspace, schedule_id, actor=ACTOR)
    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.PAUSED
    assert "outside the send window" in (run.status_reason or "")
    expected = start.replace(second=0, microsecond=0)
    assert run.resume_at == expected
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, run_id).pending == 5
        assert runs.due_paused_runs(conn, now=expected + timedelta(seconds=1))[0].id == run_id


def test_repeated_trigger_inside_the_dedupe_window_sends_nothing_new(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a second trigger by key completes with every recipient skipped as sent recently."""
    workflow = seed_workflow(workspace, tmp_path, rows=4)
    first = scheduler.trigger_workflow(workspace, workflow_key=workflow.key, actor=ACTOR)
    run_to_end(workspace, first, worker_id=new_worker_id(), stop=StopSignal())
    second = scheduler.trigger_workflow(workspace, workflow_id=workflow.id, actor=ACTOR)
    done = run_to_end(workspace, second, worker_id=new_worker_id(), stop=StopSignal())
    assert done.status is RunStatus.COMPLETED
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, first).sent == 4
        ledger = deliveries.list_deliveries(conn, second)
    assert {d.status for d in ledger} == {DeliveryStatus.SKIPPED}
    assert all((d.reason or "").startswith("sent_recently") for d in ledger)
    with pytest.raises(InputError, match="one of them"):
        scheduler.trigger_workflow(workspace, actor=ACTOR)


def test_health_follows_the_daemon_heartbeat(workspace: Workspace) -> None:
    """Verify health is false with no daemon, true while one is registered, false for a
    daemon whose process is gone or whose heartbeat is stale."""
    assert health(workspace)[0] is False
    with registered(workspace, "host:1:test") as _beat:
        ok, line = health(workspace)
        assert ok and "1 daemon(s) alive" in line
    assert health(workspace)[0] is False
    with workspace.db.begin() as conn:
        daemons.register(conn, "gone", now=utcnow())
        conn.execute(
            daemons.daemons.update().where(daemons.daemons.c.id == "gone").values(pid=2**22 + 7)
        )
        daemons.register(conn, "stale", now=datetime(2020, 1, 1, tzinfo=UTC))
    status = scheduler.daemon_status(workspace)
    assert not status.healthy
    assert {d.id for d in status.dead} == {"gone", "stale"}
