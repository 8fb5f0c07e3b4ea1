"""Helpers for the dashboard tests: paths, the demo workspace and sending a run in-process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from outreach_core import services
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import Workflow
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

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


def require_chromium() -> str:
    """Debian's chromium, or skip saying why; in CI a missing browser fails instead."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    return CHROMIUM


@contextmanager
def launched_chromium(path: str, extra_args: tuple[str, ...] = ()) -> Iterator[object]:
    """Headless chromium through Playwright (with `extra_args` on its command line), closed
    afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=path, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def opened_page(browser: Any, *, timeout_ms: float = 20_000, **context: Any) -> Iterator[Any]:
    """A page in a browser context of its own (`context`: viewport, accept_downloads, ...),
    waiting up to `timeout_ms` per action; the context is closed afterwards."""
    browser_context = browser.new_context(**context)
    page = browser_context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        yield page
    finally:
        browser_context.close()


def open_from_overview(page: Any, app_url: str, link: str) -> None:
    """Load Overview, follow the sidebar link, and wait until the linked page has drawn.

    The title is matched exactly: Overview's "Recent runs" heading contains "Runs", and
    Overview's elements linger beside the new page's until its rerun ends (READY). The link is
    the sidebar's (the checklist links to pages as well).
    """
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    page.get_by_role("heading", name="Overview").wait_for()
    # the sidebar's link: Overview's checklist links to pages too ("Open Audiences")
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=link).click()
    page.get_by_role("heading", name=link, exact=True).wait_for()
    page.wait_for_selector(READY)


def keyed(widgets: Any, prefix: str) -> Any:
    """The one AppTest widget of `widgets` (e.g. `at.selectbox`) whose key is `prefix_<tag>`:
    the Audiences page keys its pickers by the uploaded file."""
    found = [w for w in widgets if w.key and w.key.startswith(f"{prefix}_")]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


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


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Wait for a streamlit server's /_stcore/health; fail with its log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"streamlit did not answer /_stcore/health in {timeout}s:\n{log.read_text()[-3000:]}"
    )


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM by PID (uvicorn shuts down gracefully in 1-4 s), then kill as a fallback."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def serve_app(
    data: Path, *, nameserver: str, address: str = "127.0.0.1", extra: dict[str, str] | None = None
) -> Iterator[str]:
    """`streamlit run Home.py` over the data folder on a free port; yields its URL, then stops it.

    The database URL is explicit, so a developer's .env cannot point the app elsewhere, and MX
    checks ask the loopback DNS server at `nameserver`, never a real one. `address` is
    server.address (0.0.0.0 to check the login; the URL stays 127.0.0.1); `extra` adds settings.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REPORT_"))}
    env.update(
        OUTREACH_DATA_DIR=str(data),
        OUTREACH_DATABASE_URL=f"sqlite:///{(data / 'outreach.db').resolve()}",
        PYTHONPATH=str(REPO),
        OUTREACH_DNS_NAMESERVERS=nameserver,
        OUTREACH_DNS_TIMEOUT="0.5",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    env.update(extra or {})
    log = data.parent / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
             "--server.address", address, "--server.port", str(port),
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        stop_server(proc)
