"""The sending stages read the time from the clock they are given (a `HandClock` here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_pause_cancel import act_after, by_status

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, work_once
from tests.fake_clock import HandClock

#: a Monday morning, hours before the window below opens
EARLY = datetime(2030, 6, 3, 6, 30, tzinfo=UTC)


def queue(ws: Workspace, outbox: Path, options: SendOptions, *, rows: int) -> int:
    """A queued run of a new workflow mailing `rows` contacts to an outbox."""
    workflow = services.setup_workflow(
        ws,
        name="clocked",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"p{n}@example.com"} for n in range(rows)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=options,
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def test_the_send_window_is_decided_by_the_clock_given(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a run started at 06:30 on the clock given pauses until its 09:00 window opens,
    and a daemon pass once the clock reads 09:00:30 resumes and completes it, every send and
    the end stamped with that clock's time."""
    clock = HandClock(EARLY)
    options = SendOptions(rate=0, batch_size=2, send_window="09:00-17:00", timezone="UTC")
    run_id = queue(workspace, tmp_path / "outbox", options, rows=5)

    paused = run_to_end(
        workspace, run_id, worker_id=new_worker_id(), stop=StopSignal(), clock=clock
    )

    assert paused.status is RunStatus.PAUSED
    assert paused.resume_at == datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
    assert by_status(workspace, run_id) == {DeliveryStatus.PENDING: 5}

    clock.now = datetime(2030, 6, 3, 9, 0, 30, tzinfo=UTC)
    [done] = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal(), clock=clock)

    assert (done.id, done.status) == (run_id, RunStatus.COMPLETED)
    assert done.finished_at == clock.now
    with workspace.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
    assert {d.status for d in ledger} == {DeliveryStatus.SENT}
    assert {d.sent_at for d in ledger} == {clock.now}


def test_the_time_limit_is_decided_by_the_clock_given(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a run whose clock moves on 2 minutes during its first batch stops at its 1 min
    limit after that batch: the batch sent, every other row skipped as time_limit."""
    clock = HandClock(EARLY)
    options = SendOptions(rate=0, concurrency=1, batch_size=3, time_limit_minutes=1)
    run_id = queue(workspace, tmp_path / "outbox", options, rows=10)
    act_after(monkeypatch, 1, lambda: clock.advance(minutes=2))

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal(), clock=clock)

    assert run.status is RunStatus.COMPLETED
    assert run.status_reason == "time limit of 1 min reached; 7 recipients left unsent"
    assert run.started_at == EARLY
    assert run.finished_at == EARLY + timedelta(minutes=2)
    assert by_status(workspace, run_id) == {DeliveryStatus.SENT: 3, DeliveryStatus.SKIPPED: 7}
