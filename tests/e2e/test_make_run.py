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
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.dashboard import CHROMIUM, CHROMIUM_ARGS, READY, SCREENSHOTS

from conftest import REPO
from smtp_server import free_port


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the dashboard did not become healthy")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "outreach_core", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.browser
def test_make_run_serves_the_demo_and_ctrl_c_stops_dashboard_and_daemon(tmp_path: Path) -> None:
    """Verify `make run`: Home shows the demo counts, the daemon sends, SIGINT stops both."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "MAKE"))}
    env.update(OUTREACH_DATA_DIR=str(data), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = (tmp_path / "make-run.log").open("w")
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
        _wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(30_000)
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
            browser.close()

        # The daemon that `make run` started sends a run queued now.
        cli_env = {**env, "PYTHONPATH": str(REPO)}
        workflow = "Demo: spring workshop"
        queued = _cli(cli_env, "runs", "--json")
        assert json.loads(queued.stdout) == []
        from outreach_core import services
        from outreach_core.settings import Settings
        from outreach_core.workspace import open_workspace

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
        assert len(list((data / "outbox").glob("*.eml"))) == 50
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
