"""Pause, resume and cancel a run while it sends (outbox engine, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import OutboxSender, message_files
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import IllegalTransition
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

ROWS = 40
BATCH = 5


def seed(ws: Workspace, outbox: Path) -> int:
    workflow = services.setup_workflow(
        ws,
        name="pc",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"p{n}@example.com"} for n in range(ROWS)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=1, batch_size=BATCH),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def act_after(monkeypatch: pytest.MonkeyPatch, count: int, action: Any) -> Counter[int]:
    """Spy on the outbox: after `count` messages, call `action()` once (as a user would)."""
    sent: Counter[int] = Counter()
    original = OutboxSender.send

    async def spy(self: OutboxSender, outgoing: Any) -> Any:
        sent[outgoing.delivery_id] += 1
        if sum(sent.values()) == count:
            action()
        return await original(self, outgoing)

    monkeypatch.setattr(OutboxSender, "send", spy)
    return sent


def by_status(ws: Workspace, run_id: int) -> Counter[DeliveryStatus]:
    with ws.db.connect() as conn:
        return Counter(d.status for d in deliveries.list_deliveries(conn, run_id))


def test_pause_stops_after_the_batch_and_resume_sends_the_rest_once(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify pause_run mid-batch: the batch completes, the run is PAUSED and released;
    resuming sends only the rest, nobody twice."""
    run_id = seed(workspace, tmp_path / "outbox")
    sent = act_after(monkeypatch, 7, lambda: services.pause_run(workspace, run_id, actor="ann"))

    paused = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert paused.status is RunStatus.PAUSED and paused.worker_id is None
    assert paused.status_reason == "paused by ann"
    assert by_status(workspace, run_id) == {DeliveryStatus.SENT: 10, DeliveryStatus.PENDING: 30}
    resumed = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert resumed.status is RunStatus.COMPLETED
    assert by_status(workspace, run_id) == {DeliveryStatus.SENT: ROWS}
    assert len(sent) == ROWS and max(sent.values()) == 1


def test_cancel_stops_after_the_batch_and_leaves_the_rest_unsent(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify cancel_run mid-batch: the batch is recorded, the run CANCELLED, the rest
    `cancelled` (none left pending) and never sent; a cancelled run cannot be paused."""
    ws = sqlite_workspace
    run_id = seed(ws, tmp_path / "outbox")
    sent = act_after(monkeypatch, 12, lambda: services.cancel_run(ws, run_id, actor="bob"))

    run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.CANCELLED and run.finished_at is not None
    assert by_status(ws, run_id) == {DeliveryStatus.SENT: 15, DeliveryStatus.CANCELLED: 25}
    assert len(sent) == 15
    with pytest.raises(IllegalTransition, match="only runs that are SENDING can"):
        services.pause_run(ws, run_id, actor="bob")


def test_a_queued_run_can_be_cancelled_before_it_starts(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify cancelling a QUEUED run ends it with nothing frozen or sent."""
    run_id = seed(sqlite_workspace, tmp_path / "outbox")
    run = services.cancel_run(sqlite_workspace, run_id, actor="bob")
    assert run.status is RunStatus.CANCELLED
    assert by_status(sqlite_workspace, run_id) == {}
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())


def test_messages_carry_list_unsubscribe_with_a_token_for_their_recipient(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify each sent .eml has List-Unsubscribe (https first, mailto) and the one-click header;
    its link is the recipient's own `unsubscribe_url`, whose token verifies for that address,
    and its mailto subject carries the same token."""
    from email import message_from_bytes, policy
    from urllib.parse import parse_qs, urlsplit

    from outreach_core.domain import unsubscribe_links
    from outreach_core.services import compliance

    outbox = tmp_path / "outbox"
    workflow = services.setup_workflow(
        sqlite_workspace,
        name="unsub",
        parsed=ParsedFile(
            "c.csv",
            ["email"],
            "email",
            [{"email": "ann@example.org"}, {"email": "bob@example.org"}],
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(
            rate=0,
            unsubscribe_mailto="unsub@example.com",
            unsubscribe_base_url="https://example.com/u",
        ),
        actor="test",
    )
    run_id = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor="test")
    run_to_end(sqlite_workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    files = sorted(message_files(outbox))
    assert len(files) == 2
    for path in files:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        header = str(message["List-Unsubscribe"])
        https, mailto = (part.strip().strip("<>") for part in header.split(","))
        key = compliance.unsubscribe_key(sqlite_workspace)
        # the mailto's subject carries the recipient's own token, for the mailbox reader
        to_token = unsubscribe_links.token(key, str(message["To"]))
        assert mailto == f"mailto:unsub@example.com?subject=unsubscribe%20{to_token}"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert https.startswith("https://example.com/u?")
        query = {k: v[0] for k, v in parse_qs(urlsplit(https).query).items()}
        assert query["email"] == str(message["To"])
        assert unsubscribe_links.verify(key, query["email"], query["token"])
        assert not unsubscribe_links.verify(key, "someone@example.org", query["token"])


def test_time_limit_ends_the_run_completed_with_the_rest_skipped(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a run over its time limit ends COMPLETED with partial results: every row sent or
    skipped as time_limit, and the reason says how many were left."""
    outbox = tmp_path / "outbox"
    workflow = services.setup_workflow(
        sqlite_workspace,
        name="limited",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"p{n}@example.com"} for n in range(60)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        # 20 per second and a 0.3 s limit: the limit strikes long before 60 rows are through
        options=SendOptions(rate=20, burst=1, batch_size=2, time_limit_minutes=0.005),
        actor="test",
    )
    run_id = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor="test")
    run = run_to_end(sqlite_workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    with sqlite_workspace.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
    skipped = [d for d in ledger if d.status is DeliveryStatus.SKIPPED]
    sent = [d for d in ledger if d.status is DeliveryStatus.SENT]
    assert skipped and len(sent) + len(skipped) == 60
    assert all((d.reason or "").startswith("time_limit:") for d in skipped)
    assert (
        run.status_reason
        == f"time limit of 0.005 min reached; {len(skipped)} recipients left unsent"
    )
    assert len(list(message_files(outbox))) == len(sent)
