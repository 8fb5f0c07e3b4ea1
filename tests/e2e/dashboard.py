"""Helpers for the dashboard tests: paths, the demo workspace and sending a run in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from outreach_core import services
from outreach_core.executor import StopSignal, new_worker_id, run_to_end
from outreach_core.models import Workflow
from outreach_core.settings import Settings
from outreach_core.workspace import Workspace, open_workspace

REPO = Path(__file__).resolve().parents[2]

# Debian's chromium, headless, with background networking off: it contacts nothing outside.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
READY = (
    '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
    '[data-test-script-state="notRunning"]'
)
HOME = str(REPO / "Home.py")


def open_test_workspace(data: Path) -> Workspace:
    """The workspace the app will open, for seeding and checking it from the test."""
    return open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=data))


@dataclass
class Demo:
    """The demo workspace, opened by the test, and its one workflow."""

    ws: Workspace
    workflow: Workflow


def send_run(ws: Workspace, workflow: Workflow) -> int:
    """Queue a run of the workflow and execute it to its end in this process (unthrottled)."""
    options = workflow.options.model_copy(update={"rate": 0})
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test", options=options)
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id
