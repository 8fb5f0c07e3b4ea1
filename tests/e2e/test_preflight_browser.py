"""The one pre-flight and the one send confirmation in Chromium, on a machine without outside
DNS (the dashboard's resolver is a dead loopback port: every MX lookup fails).

One dashboard and one browser for the module; each test seeds nothing of its own and uses its
own workflow (tests/e2e/preflight_seed.py), so they pass in any order or worker. Screenshots go
to $OUTREACH_SCREENSHOTS/preflight (default test-artifacts/screenshots/preflight); each test
prints its path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from outreach_core import RunStatus, services
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.services import preflight
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    free_port,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    serve_app,
)
from tests.e2e.preflight_seed import MIXED_COUNTS, Seeded, seed

from conftest import wait_for

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("OUTREACH_SCREENSHOTS") or SCREENSHOTS) / "preflight"
IDLE = "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
#: a loopback port nothing listens on: the dashboard's every DNS question goes unanswered
DEAD_DNS = f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    folder = tmp_path_factory.mktemp("preflight-browser") / "data"
    return folder, seed(folder)


@pytest.fixture(scope="module")
def app_url(data: tuple[Path, Seeded], chromium_path: str) -> Iterator[str]:
    with serve_app(data[0], nameserver=DEAD_DNS) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[Any]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    # tall: Streamlit scrolls its main area itself, so a screenshot holds what the viewport does
    with opened_page(browser, viewport={"width": 1400, "height": 1700}) as page:
        yield page


def choose(page: Any, testid: str, label: str, option: str) -> None:
    """Open a selectbox or multiselect by its label and click one of its options."""
    page.locator(f'[data-testid="{testid}"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_selector(READY)


def screenshot(page: Any, name: str) -> Path:
    page.wait_for_selector(READY)
    page.wait_for_function(IDLE)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000
    return path


def shown_metrics(page: Any) -> list[tuple[str, int]]:
    """The metrics of the page's pre-flight, in order (those before any run's "Sent")."""
    page.wait_for_selector(READY)
    page.locator('[data-testid="stMetric"]').first.wait_for()
    found = []
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        if label == "Sent":
            break
        found.append((label, int(metric.locator('[data-testid="stMetricValue"]').inner_text())))
    return found


def test_a_workflow_made_on_the_page_with_dns_skipped_sends_without_dns(
    page: Any, app_url: str, data: tuple[Path, Seeded]
) -> None:
    """Verify that, where DNS answers nothing, a workflow created on the Workflows page with
    "Skip the DNS check" ticked is confirmed for all 15 contacts and sends them to the outbox,
    while the same audience checked with DNS has no valid recipient."""
    folder, _ = data
    open_from_overview(page, app_url, "Workflows")
    page.get_by_label("Name", exact=True).fill("No DNS")
    choose(page, "stSelectbox", "Audience", "Contacts (15 rows)")
    choose(page, "stSelectbox", "Template", "Hello (v1)")
    choose(page, "stMultiSelect", "Engines", "Outbox B (outbox · no limits)")
    page.keyboard.press("Escape")
    page.get_by_text("Skip the DNS check (MX lookups)").click()
    page.get_by_role("button", name="Create workflow").click()
    page.get_by_text("Workflow No DNS created").wait_for()
    screenshot(page, "a1_workflow_created_with_dns_skipped.png")

    ws = open_test_workspace(folder)
    try:
        workflow = services.find_workflow(ws, "No DNS")
        assert workflow.options.skip_mx
        ws.settings.dns_nameservers = DEAD_DNS  # as the dashboard sees the network
        # in a thread of its own: Playwright's loop runs in this one, the DNS step needs its own
        with ThreadPoolExecutor(1) as pool:
            with_dns = pool.submit(
                preflight.workflow_preflight, ws, workflow.id, skip_mx=False
            ).result()
    finally:
        ws.close()
    assert (with_dns.counts.valid, with_dns.counts.by_status["dns_error"]) == (0, 15)

    open_from_overview(page, app_url, "Send")
    choose(page, "stSelectbox", "Workflow", "No DNS")
    page.get_by_text("DNS check skipped (workflow option)").wait_for()
    page.get_by_text("I confirm sending to 15 recipients").click()
    page.wait_for_selector(READY)
    page.get_by_role("button", name="Send now").click()
    page.get_by_text("15 of 15 recipients done").wait_for(timeout=60_000)
    page.get_by_text("COMPLETED", exact=True).wait_for()
    outbox = folder / "outbox-b"
    wait_for(lambda: len(list(message_files(outbox))) == 15, what="15 messages in the outbox")
    # the page redrawn once the run stopped: its pre-flight now counts the 15 as sent
    page.get_by_text("15 recipients were already sent by this workflow").wait_for()
    page.get_by_text("15 of 15 recipients done").wait_for()
    screenshot(page, "a2_sent_without_dns.png")


def test_dry_run_and_send_show_the_same_counts(
    page: Any, app_url: str, data: tuple[Path, Seeded]
) -> None:
    """Verify the Dry run page and the Send page show the same metrics for the Mixed workflow,
    and that they are the pre-flight's (dedupe, suppression and render error included)."""
    open_from_overview(page, app_url, "Dry run")
    choose(page, "stSelectbox", "Check", "Workflow: Mixed")
    page.get_by_role("button", name="Run dry run").click()
    page.get_by_text("render_error: 1 row will not be sent").wait_for()
    dry = shown_metrics(page)
    screenshot(page, "b1_dry_run_counts.png")

    open_from_overview(page, app_url, "Send")
    choose(page, "stSelectbox", "Workflow", "Mixed")
    page.get_by_text("I confirm sending to 2 recipients").wait_for()
    send = shown_metrics(page)
    screenshot(page, "b2_send_counts.png")
    assert dry == send
    assert send[0] == ("valid", 2) and dict(send) == MIXED_COUNTS


def test_saving_a_workflow_warns_of_the_missing_column(
    page: Any, app_url: str, data: tuple[Path, Seeded]
) -> None:
    """Verify creating a workflow whose template uses `city` with an audience without it names
    the variable and the fix right after the save."""
    open_from_overview(page, app_url, "Workflows")
    page.get_by_label("Name", exact=True).fill("City news")
    choose(page, "stSelectbox", "Audience", "Contacts (15 rows)")
    choose(page, "stSelectbox", "Template", "City note (v1)")
    choose(page, "stMultiSelect", "Engines", "Outbox (outbox · no limits)")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Create workflow").click()
    page.get_by_text("Workflow City news created").wait_for()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="the template uses city")
    alert.wait_for()
    text = alert.inner_text()
    assert "the audience has no such column" in text
    assert "{{ city | default('…') }}" in text and "choose another audience" in text
    screenshot(page, "c_missing_column_at_save.png")


def test_the_dedupe_count_is_shown_before_a_second_send(
    page: Any, app_url: str, data: tuple[Path, Seeded]
) -> None:
    """Verify the Send page of a workflow that just sent to its 15 contacts says they will be
    skipped and offers nothing to confirm."""
    open_from_overview(page, app_url, "Send")
    choose(page, "stSelectbox", "Workflow", "Weekly")
    page.get_by_text(
        "15 recipients were already sent by this workflow within its dedupe window (24 h) and "
        "will be skipped."
    ).wait_for()
    page.get_by_text(
        "Nothing to send: every recipient was sent to within the dedupe window."
    ).wait_for()
    assert page.get_by_role("button", name="Send now").count() == 0
    screenshot(page, "d_dedupe_before_second_send.png")


def test_home_queue_run_asks_first_and_queues_only_once_confirmed(
    page: Any, app_url: str, data: tuple[Path, Seeded]
) -> None:
    """Verify Home's "Queue run" shows the count to confirm and queues nothing until the box
    is ticked and the confirmation's button pressed; then exactly one run is queued."""
    folder, seeded = data

    def queued() -> list[RunStatus]:
        ws = open_test_workspace(folder)
        try:
            return [
                s.run.status
                for s in services.recent_runs(ws, limit=50)
                if s.run.workflow_id == seeded.home
            ]
        finally:
            ws.close()

    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    choose(page, "stSelectbox", "Workflow", "Home queue")
    page.get_by_role("button", name="Queue run").click()
    page.get_by_text("I confirm sending to 15 recipients").wait_for()
    assert queued() == []
    send = page.get_by_role("button", name="Queue run")
    assert send.is_disabled()
    screenshot(page, "e1_home_asks_first.png")

    page.get_by_text("I confirm sending to 15 recipients").click()
    page.wait_for_selector(READY)
    send.click()
    page.get_by_text("queued: the scheduler daemon will send it").wait_for()
    assert queued() == [RunStatus.QUEUED]
    screenshot(page, "e2_home_queued_after_confirming.png")
