"""The Workflows and Engines pages in a real browser (Debian's chromium via Playwright):
create a workflow with two engines through the form, set an engine's limits; screenshots
`workflows.png` and `engine_limits.png` go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    READY,
    SCREENSHOTS,
    open_test_workspace,
    serve_app,
)

pytestmark = pytest.mark.browser

IDLE = "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires it)")
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo workspace plus a second engine."""
    folder = tmp_path_factory.mktemp("workflows-browser") / "data"
    ws = open_test_workspace(folder)
    try:
        assert load_demo(ws) is not None
        services.save_engine(
            ws, name="Backup outbox", url=f"outbox:///{folder}/backup",
            from_email="team@example.com", from_name="Team", actor="test",
        )  # fmt: skip
    finally:
        ws.close()
    return folder


@pytest.fixture(scope="module")
def app_url(data: Path, chromium_path: str, dns_server: DnsServer) -> Iterator[str]:
    with serve_app(data, nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture
def page(chromium_path: str, app_url: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1700})
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def open_page(page, app_url: str, link: str) -> None:
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=link).wait_for()
    page.wait_for_selector(READY)


def choose(page, testid: str, label: str, option: str) -> None:
    """Open a selectbox or multiselect by its label and click one of its options."""
    page.locator(f'[data-testid="{testid}"]').filter(has_text=label).click()
    page.get_by_role("option", name=option).click()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_create_a_workflow_with_two_engines_in_the_browser(page, app_url: str, data: Path) -> None:
    """Verify the form creates a workflow with both engines in the chosen order and a key made
    from its name, the table lists it, and the page is captured."""
    open_page(page, app_url, "Workflows")
    page.get_by_label("Name", exact=True).fill("Autumn newsletter")
    choose(page, "stSelectbox", "Audience", "Demo contacts (54 rows)")
    choose(page, "stSelectbox", "Template", "Spring workshop invitation (v1)")
    choose(page, "stMultiSelect", "Engines", "Backup outbox (outbox · no limits)")
    choose(page, "stMultiSelect", "Engines", "Local outbox (outbox · no limits)")
    page.keyboard.press("Escape")
    page.get_by_role("textbox", name="Report recipients").fill("ops@example.com")
    page.get_by_role("button", name="Create workflow").click()
    page.get_by_text("Workflow Autumn newsletter created").wait_for()
    page.wait_for_selector(READY)
    page.wait_for_function(IDLE)
    shot = screenshot(page, "workflows.png")
    assert shot.stat().st_size > 10_000

    ws = open_test_workspace(data)
    try:
        saved = services.find_workflow(ws, "Autumn newsletter")
        names = {e.id: e.name for e in services.list_engines(ws)}
    finally:
        ws.close()
    assert saved.key == "autumn-newsletter"
    assert [names[i] for i in saved.engine_ids] == ["Backup outbox", "Local outbox"]
    assert saved.options.report_recipients == ["ops@example.com"]


def test_set_engine_limits_in_the_browser(page, app_url: str, data: Path) -> None:
    """Verify a daily quota typed into the limits form is saved and shown."""
    open_page(page, app_url, "Engines")
    page.get_by_role("heading", name="Limits").wait_for()
    page.get_by_role("spinbutton", name="Daily quota").fill("250")
    page.get_by_role("button", name="Save limits").click()
    page.get_by_text("Limits of Backup outbox saved: 250/day").wait_for()
    page.wait_for_selector(READY)
    page.wait_for_function(IDLE)
    screenshot(page, "engine_limits.png")

    ws = open_test_workspace(data)
    try:
        quotas = {e.name: e.limits.daily_quota for e in services.list_engines(ws)}
    finally:
        ws.close()
    assert quotas == {"Backup outbox": 250, "Local outbox": None}
