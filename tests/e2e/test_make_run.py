"""`make run` end to end: demo loaded, daemon and dashboard started, Ctrl-C stops both.

Uses the virtualenv the tests run in (VENV=sys.prefix), so `make` installs nothing new.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outreach_core.adapters.senders.outbox import message_files
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    launched_chromium,
    opened_page,
    wait_healthy,
)

from conftest import REPO, run_cli
from smtp_server import free_port


@pytest.mark.browser
def test_make_run_serves_the_demo_and_ctrl_c_stops_dashboard_and_daemon(
    tmp_path: Path, chromium_path: str
) -> None:
    """Verify `make run`: Home shows the demo counts, the daemon sends, SIGINT stops both."""
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "MAKE"))}
    env.update(OUTREACH_DATA_DIR=str(data), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log_path = tmp_path / "make-run.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VENV={sys.prefix}", f"PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path, timeout=90)
        with (
            launched_chromium(chromium_path) as chromium,
            opened_page(
                chromium, timeout_ms=30_000, viewport={"width": 1400, "height": 1300}
            ) as page,
        ):
            # The very first request after start is a deep link: Home.py still frames it.
            page.goto(f"{url}/runs")
            page.get_by_role("heading", name="Runs").wait_for()
            nav = page.locator('[data-testid="stSidebarNav"]')
            nav.get_by_text("Overview").wait_for()
            assert "Templates" in nav.inner_text()
            page.goto(url)
            page.wait_for_selector(READY)
            metrics = page.locator('[data-testid="stMetric"]')
            metrics.first.wait_for()
            # READY matched before the script started; after a metric is drawn it means the
            # script finished, so every metric is on the page before they are read.
            page.wait_for_selector(READY)
            shown = {
                metrics.nth(i).locator('[data-testid="stMetricLabel"]').inner_text().strip(): (
                    metrics.nth(i).locator('[data-testid="stMetricValue"]').inner_text().strip()
                )
                for i in range(metrics.count())
            }
            for label in ("Audiences", "Templates", "Engines", "Workflows"):
                assert shown.get(label) == "1", shown
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "make-run-home.png"))

        # The daemon that `make run` started sends a run queued now.
        workflow = "Demo: spring workshop"
        queued = run_cli(tmp_path, "runs", "--json", env={**env, "PYTHONPATH": str(REPO)})
        assert json.loads(queued.stdout) == []
        from outreach_core import services
        from outreach_core.adapters.settings import Settings
        from outreach_core.adapters.workspace import open_workspace

        ws = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=data))
        try:
            wf = next(w for w in services.list_workflows(ws) if w.name == workflow)
            run_id = services.queue_run(ws, wf.id, trigger="test", actor="test")
            deadline = time.monotonic() + 60
            while services.run_summary(ws, run_id).run.status != "COMPLETED":
                assert time.monotonic() < deadline, "the daemon did not send the queued run"
                time.sleep(0.3)
            assert services.run_summary(ws, run_id).counts.sent == 50
        finally:
            ws.close()
        assert len(list(message_files(data / "outbox"))) == 50
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "processes of `make run` outlived Ctrl-C"
    second = subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={sys.prefix}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "demo workspace already present" in second.stdout
