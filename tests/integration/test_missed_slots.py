"""Missed schedule slots after a daemon outage, on SQLite and PostgreSQL: one log line per
claim, one audit entry per slot, written by the claim that wins (never twice)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fake_clock import HandClock
from test_store import in_threads, seed_workflow

from outreach_core.adapters.store import runs, schedules
from outreach_core.adapters.store.tables import audit_log
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.cadence import Cadence, CadenceKind, MissedSlotPolicy
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import Workflow
from outreach_core.entrypoints.daemon import claim_schedules
from outreach_core.services import schedules as scheduler

from conftest import REPO, cli_env, make_settings

ACTOR = "test"
EVERY_MINUTE = Cadence(kind=CadenceKind.MINUTES, interval=1)
NOON = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def make_schedule(
    ws: Workspace, workflow: Workflow, *, now: datetime, cadence: Cadence = EVERY_MINUTE, **extra
) -> int:
    """A schedule saved at `now` (its first slot is the cadence's next one after `now`)."""
    data = scheduler.ScheduleInput(workflow_id=workflow.id, cadence=cadence, **extra)
    return scheduler.save_schedule(ws, data, actor=ACTOR, now=now).id


def missed_entries(ws: Workspace) -> list[dict]:
    with ws.db.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log)
            .where(audit_log.c.action == "schedule.missed")
            .order_by(audit_log.c.id)
        )
        return [dict(r._mapping) for r in rows]


def missed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event=schedule.missed" in r.getMessage()]


def scheduled_runs(ws: Workspace) -> list[int]:
    with ws.db.connect() as conn:
        return [r.id for r in runs.list_runs(conn) if r.trigger == "schedule"]


def test_three_minutes_down_logs_and_audits_the_two_missed_slots(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify the outage: every-minute schedule, the daemon claims 12:00 at 12:00:05, is down
    for three minutes, claims again at 12:03:05. Slots 12:01 and 12:02 passed with no daemon
    (two missed; 12:03 is 5 s old, on time): one run queued, one log line naming both slots,
    one audit entry each; claiming again records nothing new."""
    caplog.set_level(logging.INFO, logger="outreach.schedules")
    workflow = seed_workflow(workspace, tmp_path)
    clock = HandClock(NOON - timedelta(seconds=30))
    schedule_id = make_schedule(workspace, workflow, now=clock())

    clock.advance(seconds=35)  # 12:00:05, the daemon's tick
    [on_time] = claim_schedules(workspace, now=clock())
    assert on_time.run_id is not None and on_time.missed is None
    assert missed_lines(caplog) == [] and missed_entries(workspace) == []

    clock.advance(minutes=3)  # 12:03:05: the daemon is back
    [back] = claim_schedules(workspace, now=clock())
    assert back.run_id is not None  # the 12:03 slot, on time
    assert back.note == "on time; 2 earlier slot(s) missed, skipped"
    assert len(scheduled_runs(workspace)) == 2  # 12:00 and 12:03, nothing for the missed two
    assert missed_lines(caplog) == [
        f"event=schedule.missed schedule={schedule_id} "
        "slots=2026-12-04T12:01:00Z,2026-12-04T12:02:00Z count=2 policy=skip action=skipped"
    ]
    entries = missed_entries(workspace)
    assert [(e["actor"], e["subject"], e["at"]) for e in entries] == [
        ("scheduler", f"schedule {schedule_id}", clock())
    ] * 2
    assert [e["detail"] for e in entries] == [
        {"slot": "2026-12-04T12:01:00Z", "policy": "skip", "action": "skipped"},
        {"slot": "2026-12-04T12:02:00Z", "policy": "skip", "action": "skipped"},
    ]

    clock.advance(seconds=1)
    assert claim_schedules(workspace, now=clock()) == []
    clock.advance(minutes=1)  # 12:04:06: on time again
    [next_one] = claim_schedules(workspace, now=clock())
    assert next_one.run_id is not None and next_one.missed is None
    assert len(missed_lines(caplog)) == 1
    assert len(missed_entries(workspace)) == 2


def test_run_late_records_the_caught_up_slot_with_its_run(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify an hourly run-late schedule found 30 min after its third slot: one run for the
    latest slot, the line says caught_up, and the audit names that run on the latest slot."""
    caplog.set_level(logging.INFO, logger="outreach.schedules")
    workflow = seed_workflow(workspace, tmp_path)
    schedule_id = make_schedule(
        workspace,
        workflow,
        now=NOON - timedelta(hours=2, minutes=30),
        cadence=Cadence(kind=CadenceKind.HOURS, interval=1),
        missed_policy=MissedSlotPolicy.RUN_LATE,
        late_window_hours=1,
    )
    [claimed] = claim_schedules(workspace, now=NOON + timedelta(minutes=30))
    assert claimed.run_id is not None
    assert missed_lines(caplog) == [
        f"event=schedule.missed schedule={schedule_id} slots=2026-12-04T10:00:00Z,"
        "2026-12-04T11:00:00Z,2026-12-04T12:00:00Z count=3 policy=run_late action=caught_up"
    ]
    assert [e["detail"] for e in missed_entries(workspace)] == [
        {"slot": "2026-12-04T10:00:00Z", "policy": "run_late", "action": "skipped"},
        {"slot": "2026-12-04T11:00:00Z", "policy": "run_late", "action": "skipped"},
        {
            "slot": "2026-12-04T12:00:00Z",
            "policy": "run_late",
            "action": "caught_up",
            "run": claimed.run_id,
        },
    ]


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_claimers_record_each_missed_slot_once(
    workspace: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture, attempt: int
) -> None:
    """Verify four daemons claiming at once after the outage, over eight schedules with two
    missed slots each, record every slot exactly once and log one line per schedule."""
    caplog.set_level(logging.INFO, logger="outreach.schedules")
    workflow = seed_workflow(workspace, tmp_path)
    ids = [make_schedule(workspace, workflow, now=NOON - timedelta(seconds=30)) for _ in range(8)]
    claim_schedules(workspace, now=NOON + timedelta(seconds=5))
    back = NOON + timedelta(minutes=3, seconds=5)
    results = in_threads(4, lambda _i: claim_schedules(workspace, now=back))
    claimed = [c for found in results for c in found]
    assert sorted(c.schedule_id for c in claimed) == ids
    entries = missed_entries(workspace)
    keys = [(e["subject"], e["detail"]["slot"]) for e in entries]
    assert len(keys) == len(set(keys)) == 16
    assert {s for s, _ in keys} == {f"schedule {i}" for i in ids}
    lines = missed_lines(caplog)
    assert sorted(int(re.search(r"schedule=(\d+)", line)[1]) for line in lines) == ids
    assert len(scheduled_runs(workspace)) == 16  # 12:00 and 12:03 of each, nothing twice


def test_page_view_lists_latest_missed_slots_with_the_count(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the Schedules page's view: 14 slots missed in two outages, the count is 14 and
    the ten newest are listed newest first, in the schedule's local time."""
    workflow = seed_workflow(workspace, tmp_path)
    schedule_id = make_schedule(
        workspace, workflow, now=NOON - timedelta(seconds=30), timezone="America/New_York"
    )
    claim_schedules(workspace, now=NOON + timedelta(minutes=4, seconds=5))  # 12:00-12:03
    claim_schedules(workspace, now=NOON + timedelta(minutes=15, seconds=5))  # 12:05-12:14
    [view] = scheduler.list_schedules(workspace, now=NOON + timedelta(minutes=15, seconds=6))
    assert view.schedule.id == schedule_id
    assert view.missed_count == 14
    assert [m.slot for m in view.missed] == [
        f"2026-12-04 07:{minute:02d} EST (Fri)" for minute in range(14, 4, -1)
    ]
    assert {(m.policy, m.action) for m in view.missed} == {("skip", "skipped")}
    [row] = scheduler.schedule_rows([view])
    assert row["Missed slots"] == 14


def test_daemon_once_after_an_outage_prints_the_missed_line(tmp_path: Path) -> None:
    """Verify `scheduler_daemon.py --once` with an every-minute schedule last run three
    minutes ago logs the missed slots, queues one run, and the audit holds one entry per slot
    listed (on the real clock: 2 slots, or 3 if a minute turns while the daemon starts)."""
    ws = open_workspace(make_settings(tmp_path))  # the daemon's SQLite file (cli_env)
    workflow = seed_workflow(ws, tmp_path)
    now = utcnow()
    last_run = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
    schedule_id = make_schedule(ws, workflow, now=last_run)  # its next slot: last_run + 1 min
    ws.db.dispose()
    daemon = subprocess.run(
        [sys.executable, "scheduler_daemon.py", "--once"],
        cwd=REPO,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert daemon.returncode == 0, daemon.stderr
    [line] = [x for x in daemon.stderr.splitlines() if "event=schedule.missed" in x]
    first, second = (last_run + timedelta(minutes=n) for n in (1, 2))
    assert (
        f"event=schedule.missed schedule={schedule_id} "
        f"slots={first:%Y-%m-%dT%H:%M:%SZ},{second:%Y-%m-%dT%H:%M:%SZ}"
    ) in line
    assert line.endswith("policy=skip action=skipped")
    count = int(re.search(r"count=(\d+)", line)[1])
    assert count in (2, 3)
    assert len(missed_entries(ws)) == count
    assert len(scheduled_runs(ws)) == 1
    with ws.db.connect() as conn:
        assert schedules.get_schedule(conn, schedule_id).next_run_at > now
