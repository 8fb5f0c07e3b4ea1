"""A run waiting for its deferred deliveries' scheduled retries, on the Runs and Send pages
under AppTest (a real SMTP server answering 451 to two recipients): the waiting rows, their last
reply and the next attempt time are shown, and they are not counted as failed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import RunStatus, services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.e2e.dashboard import HOME, open_test_workspace

from smtp_server import SmtpTestServer

PLAIN = ["a@example.org", "b@example.org"]
GREY = ["grey1@example.org", "grey2@example.org"]


@pytest.fixture
def waiting_run(data_dir: Path) -> Iterator[tuple[Workspace, int]]:
    """A run whose two greylisted rows wait for their scheduled retry."""
    ws = open_test_workspace(data_dir)
    with SmtpTestServer() as server:
        for address in GREY:
            server.handler.fail_rcpt_times[address] = 99
        workflow = services.setup_workflow(
            ws,
            name="Greylisted",
            parsed=ParsedFile("c.csv", ["email"], "email", [{"email": e} for e in PLAIN + GREY]),
            template=TemplateSource("Hello", None, "Hello there"),
            engine_url=server.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, max_attempts=1, skip_mx=True, auto_pause_failure_rate=0),
            actor="test",
        )
        run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
        run = run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert (run.status, run.worker_id) == (RunStatus.SENDING, None)
    yield ws, run_id
    ws.close()


def next_attempt_text(ws: Workspace, run_id: int) -> str:
    next_at = services.run_summary(ws, run_id).next_retry_at
    assert next_at is not None
    return f"{next_at:%Y-%m-%d %H:%M} UTC"


def test_runs_page_lists_the_waiting_rows_with_their_next_attempt(
    waiting_run: tuple[Workspace, int],
) -> None:
    """Verify the status line says how many wait and when the next attempt is, and a table
    lists each waiting row with its last reply and next attempt."""
    ws, run_id = waiting_run
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]

    when = next_attempt_text(ws, run_id)
    status = [m.value for m in at.markdown if m.value.startswith("**SENDING**")]
    assert status == [
        f"**SENDING** (waiting for 2 deferred to be retried, next attempt {when}) · "
        + status[0].partition(" · ")[2]
    ]
    assert "Waiting for a retry (2)" in [h.value for h in at.subheader]
    [table] = [d.value for d in at.dataframe if "next attempt" in d.value.columns]
    assert sorted(table["email"]) == GREY
    assert set(table["next attempt"]) == {when}
    assert all("451 4.3.0 try again later" in reply for reply in table["last reply"])


def test_send_page_counts_waiting_rows_apart_from_failed_ones(
    waiting_run: tuple[Workspace, int],
) -> None:
    """Verify the Send page's progress shows 2 retrying, 0 failed, and the next attempt."""
    ws, run_id = waiting_run
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/send.py").run()
    assert not at.exception, [e.value for e in at.exception]

    shown = {m.label: m.value for m in at.metric}
    assert (shown["Sent"], shown["Failed"], shown["Retrying"]) == ("2", "0", "2")
    when = next_attempt_text(ws, run_id)
    assert any(
        f"waiting for 2 deferred to be retried, next attempt {when}" in m.value for m in at.markdown
    )
