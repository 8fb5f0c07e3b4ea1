"""Never twice: a workflow does not mail a recipient again inside its dedupe window."""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

ROWS = [{"email": f"p{n}@example.com"} for n in range(6)]


def seed(ws: Workspace, outbox: Path, window: float) -> int:
    workflow = services.setup_workflow(
        ws,
        name="dedupe",
        parsed=ParsedFile("c.csv", ["email"], "email", ROWS),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, batch_size=4, dedupe_window_hours=window),
        actor="test",
    )
    return workflow.id


def send_now(ws: Workspace, workflow_id: int) -> int:
    run_id = services.queue_run(ws, workflow_id, trigger="send-now", actor="test")
    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.COMPLETED
    return run_id


def statuses(ws: Workspace, run_id: int) -> list[tuple[DeliveryStatus, str]]:
    with ws.db.connect() as conn:
        return [
            (d.status, (d.reason or "").split(":")[0])
            for d in deliveries.list_deliveries(conn, run_id)
        ]


def test_a_second_send_now_inside_the_window_sends_nothing_new(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a double send-now: the second run skips every recipient as sent_recently."""
    outbox = tmp_path / "outbox"
    workflow_id = seed(workspace, outbox, window=24)
    first = send_now(workspace, workflow_id)
    second = send_now(workspace, workflow_id)

    assert statuses(workspace, first) == [(DeliveryStatus.SENT, "")] * len(ROWS)
    assert statuses(workspace, second) == [(DeliveryStatus.SKIPPED, "sent_recently")] * len(ROWS)
    assert len(list(message_files(outbox))) == len(ROWS)


@pytest.mark.parametrize("window", [0.0])
def test_window_zero_turns_dedupe_off(
    sqlite_workspace: Workspace, tmp_path: Path, window: float
) -> None:
    """Verify dedupe_window_hours=0 lets a second run send to everyone again."""
    outbox = tmp_path / "outbox"
    workflow_id = seed(sqlite_workspace, outbox, window=window)
    send_now(sqlite_workspace, workflow_id)
    second = send_now(sqlite_workspace, workflow_id)
    assert statuses(sqlite_workspace, second) == [(DeliveryStatus.SENT, "")] * len(ROWS)
    assert len(list(message_files(outbox))) == 2 * len(ROWS)
