"""The Runs page's retry buttons under AppTest, against a real SMTP server (aiosmtpd): "Retry
deferred" sends the deferred rows; "Retry deferred and unknown" first asks, stating the counts
and the duplicate risk, then sends those too; nobody gets two messages."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import RunStatus, services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import RunCounts, SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.e2e.dashboard import HOME, open_test_workspace

from smtp_server import SmtpTestServer

PLAIN = ["a@example.org", "b@example.org", "c@example.org"]
GREY = ["grey1@example.org", "grey2@example.org"]
DROPPED = "dropped@example.org"


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        for address in GREY:
            smtp.handler.fail_rcpt_times[address] = 99
        smtp.handler.drop_after_data.add(DROPPED)
        yield smtp


@pytest.fixture
def ended_run(data_dir: Path, server: SmtpTestServer) -> Iterator[tuple[Workspace, int]]:
    """A completed run: 3 sent, 2 deferred (451 until attempts ran out), 1 unknown; after it
    the server accepts everything."""
    ws = open_test_workspace(data_dir)
    workflow = services.setup_workflow(
        ws,
        name="Retry page",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": e} for e in [*PLAIN, *GREY, DROPPED]]
        ),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=server.url,
        from_email="team@example.com",
        from_name="Team",
        # no scheduled retries: the deferred rows wait for the page's retry button
        options=SendOptions(
            rate=0,
            max_attempts=2,
            skip_mx=True,
            auto_pause_failure_rate=0,
            retry_lifetime_hours=0,
        ),
        actor="test",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    server.handler.fail_rcpt_times.clear()
    server.handler.drop_after_data.clear()
    yield ws, run_id
    ws.close()


def start() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def wait_completed(ws: Workspace, run_id: int, timeout: float = 30) -> RunCounts:
    """The background executor writes the database; poll it until the run has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = services.run_summary(ws, run_id)
        if summary.run.status is RunStatus.COMPLETED:
            return summary.counts
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not complete: {services.run_summary(ws, run_id).run}")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_retry_deferred_then_unknown_after_confirmation(
    ended_run: tuple[Workspace, int], server: SmtpTestServer
) -> None:
    """Verify the two buttons: deferred rows resent at once, unknown ones only after a
    confirmation naming the counts and the duplicate risk; each address gets one message."""
    ws, run_id = ended_run
    at = start()
    assert (metrics(at)["Deferred"], metrics(at)["Unknown"]) == ("2", "1")
    assert at.button(key="retry_deferred").label == "Retry deferred (2)"

    at.button(key="retry_deferred").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "2 deliveries of run" in at.success[0].value
    counts = wait_completed(ws, run_id)
    assert (counts.sent, counts.deferred, counts.unknown) == (5, 0, 1)

    at.run()
    assert at.button(key="retry_deferred").disabled  # nothing deferred left
    at.button(key="retry_unknown").click().run()
    [warning] = at.warning
    assert "0 deferred and 1 unknown" in warning.value
    assert "may get the message twice" in warning.value
    assert services.run_summary(ws, run_id).counts.unknown == 1  # nothing happened yet
    at.button(key="retry_unknown_confirmed").click().run()
    assert not at.exception, [e.value for e in at.exception]
    counts = wait_completed(ws, run_id)
    assert (counts.sent, counts.unsettled) == (6, 0)

    arrived = Counter({k: len(v) for k, v in server.handler.by_recipient().items()})
    assert arrived == Counter({address: 1 for address in [*PLAIN, *GREY, DROPPED]})
    at.run()
    assert metrics(at)["Sent"] == "6"
    assert "retry_deferred" not in [b.key for b in at.button]  # nothing left to retry


def test_cancelling_the_confirmation_resends_nothing(ended_run: tuple[Workspace, int]) -> None:
    """Verify "Cancel" closes the confirmation and leaves the unknown row as it was."""
    ws, run_id = ended_run
    at = start()
    at.button(key="retry_unknown").click().run()
    assert at.warning
    at.button(key="retry_unknown_cancel").click().run()
    assert not at.warning
    summary = services.run_summary(ws, run_id)
    assert summary.run.status is RunStatus.COMPLETED
    assert (summary.counts.deferred, summary.counts.unknown) == (2, 1)
