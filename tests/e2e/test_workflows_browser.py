"""The Workflows, Engines and Runs pages in a real browser (Debian's chromium via Playwright):
create a workflow with two engines through the form, set an engine's limits, open the "retry
deferred and unknown" confirmation; screenshots `workflows.png`, `engine_limits.png` and
`runs_retry.png` go to test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.demo import load_demo
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    serve_app,
)

from smtp_server import SmtpTestServer

pytestmark = pytest.mark.browser

IDLE = "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo workspace, a second engine, and a run over a real SMTP server that ended with
    one deferred (451 every time) and one unknown (connection dropped after DATA) delivery."""
    folder = tmp_path_factory.mktemp("workflows-browser") / "data"
    ws = open_test_workspace(folder)
    try:
        assert load_demo(ws) is not None
        services.save_engine(
            ws, name="Backup outbox", url=f"outbox:///{folder}/backup",
            from_email="team@example.com", from_name="Team", actor="test",
        )  # fmt: skip
        with SmtpTestServer() as smtp:
            smtp.handler.fail_rcpt_times["later@example.org"] = 99
            smtp.handler.drop_after_data.add("dropped@example.org")
            emails = ["ok@example.org", "later@example.org", "dropped@example.org"]
            workflow = services.setup_workflow(
                ws,
                name="Retry demo",
                parsed=ParsedFile("c.csv", ["email"], "email", [{"email": e} for e in emails]),
                template=TemplateSource("Hello", None, "Hello there"),
                engine_url=smtp.url,
                from_email="team@example.com",
                from_name="Team",
                # no scheduled retries: the run completes, its deferred row waits for a person
                options=SendOptions(rate=0, max_attempts=1, skip_mx=True, retry_lifetime_hours=0),
                actor="test",
            )
            run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
            run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    finally:
        ws.close()
    return folder


@pytest.fixture(scope="module")
def app_url(data: Path, chromium_path: str, dns_server: DnsServer) -> Iterator[str]:
    with serve_app(data, nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    with opened_page(browser, viewport={"width": 1400, "height": 1700}) as page:
        yield page


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
    open_from_overview(page, app_url, "Workflows")
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
    open_from_overview(page, app_url, "Engines")
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
    assert (quotas["Backup outbox"], quotas["Local outbox"]) == (250, None)


def test_retry_unknown_asks_first_in_the_browser(page, app_url: str, data: Path) -> None:
    """Verify "Retry deferred and unknown" opens a confirmation naming the counts and the
    duplicate risk, and "Cancel" closes it with nothing resent."""
    open_from_overview(page, app_url, "Runs")
    page.get_by_role("button", name="Retry deferred and unknown (2)").click()
    page.get_by_text("This sends 1 deferred and 1 unknown deliveries again").wait_for()
    page.get_by_role("button", name="Yes, resend 2").wait_for()
    page.wait_for_selector(READY)
    page.wait_for_function(IDLE)
    page.get_by_role("heading", name="Runs").hover()  # no tooltip over the page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.get_by_role("tooltip").wait_for(state="hidden")
    screenshot(page, "runs_retry.png")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_text("This sends 1 deferred").wait_for(state="detached")

    ws = open_test_workspace(data)
    try:
        [latest] = services.recent_runs(ws, limit=1)
    finally:
        ws.close()
    assert (latest.counts.deferred, latest.counts.unknown) == (1, 1)
