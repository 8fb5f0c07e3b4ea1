"""Replies and the funnel to replied in a real browser (Debian's chromium, Playwright), over the
demo after a sent run with replies, an automatic reply and bounces recorded from the mailbox.
Screenshots go to test-artifacts/screenshots/ (replies.png, funnel-replied.png,
came-back.png, home-rates.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.services.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    Demo,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    serve_app,
)
from tests.e2e.test_replies_apptest import HOSTILE, seed

pytestmark = pytest.mark.browser

NO_SKELETON = "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], int]:
    """The demo loaded, a run sent, three replies (one with a hostile subject), an automatic
    reply, two hard bounces and a soft bounce; returns the folder, the repliers' addresses
    (newest first) and how many messages were sent."""
    data = tmp_path_factory.mktemp("replies-browser") / "data"
    ws = open_test_workspace(data)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        _, sent = seed(Demo(ws, workflow))
        return data, [sent[2].email, sent[1].email, sent[0].email], len(sent)
    finally:
        ws.close()


@pytest.fixture(scope="module")
def app_url(demo_data, chromium_path: str, dns_server: DnsServer) -> Iterator[str]:
    with serve_app(demo_data[0], nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    with opened_page(
        browser,
        timeout_ms=30_000,
        viewport={"width": 1400, "height": 1000},
        timezone_id="Europe/Paris",
    ) as page:
        yield page


def _whole_page(page) -> None:
    """Make the viewport as tall as the page's content, so one screenshot holds all of it."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
    )
    page.set_viewport_size({"width": 1400, "height": int(height) + 120})
    page.wait_for_function(NO_SKELETON)
    page.wait_for_timeout(500)  # let the grid and plotly lay out again


def test_replies_page_lists_who_answered_with_no_link(page, app_url: str, demo_data) -> None:
    """Verify the Replies page in the browser's zone: the three repliers newest first, the
    hostile subject shown as written, no link anywhere in the page's content, the automatic
    reply counted; then screenshot it."""
    _, repliers, _ = demo_data
    open_from_overview(page, app_url, "Replies")
    page.get_by_text("Times are in your time zone, Europe/Paris.").wait_for()
    grid = page.locator('[data-testid="stDataFrame"]')
    grid.wait_for()
    page.wait_for_function(NO_SKELETON)

    metrics = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    assert [m.strip() for m in metrics] == ["3", "1"]
    # the grid draws on a canvas; its accessible (hidden) twin holds the cell texts
    cell = grid.locator('[role="gridcell"]')
    cell.filter(has_text=repliers[0]).first.wait_for(state="attached")
    cells = cell.all_text_contents()
    assert [c for c in cells if "@" in c and c in repliers] == repliers
    assert HOSTILE in cells
    main = page.locator('[data-testid="stMain"]')
    # Streamlit's own heading anchors (#replies) aside, the page holds no link at all
    hrefs = main.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert [h for h in hrefs if not (h or "").startswith("#")] == []
    assert page.locator('a[href^="javascript:"]').count() == 0
    # the subject's HTML stays text: no element made of it, no attribute pointing anywhere
    assert page.locator('[href*="evil.example"], [src*="evil.example"]').count() == 0
    assert main.locator("b, strong").filter(has_text="now").count() == 0

    # the page with its sidebar (Replies picked in the navigation), down to the CSV button
    button = page.get_by_role("button", name="Download replies as CSV").bounding_box()
    assert button
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SCREENSHOTS / "replies.png"),
        clip={"x": 0, "y": 0, "width": 1400, "height": button["y"] + button["height"] + 30},
    )


def test_results_funnel_reaches_replied(page, app_url: str) -> None:
    """Verify the run's funnel ends sent → delivered → replied and the charts of what came
    back are drawn; screenshot the funnel and those charts."""
    open_from_overview(page, app_url, "Results")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 9"
    )
    page.wait_for_function(NO_SKELETON)
    _whole_page(page)

    charts = page.locator('[data-testid="stPlotlyChart"]')
    funnel = charts.filter(has_text="Funnel of run")
    funnel.scroll_into_view_if_needed()
    # plotly draws a funnel's first step on top, its tick labels last to first
    labels = funnel.locator("g.ytick text").all_text_contents()
    assert labels[::-1] == ["audience", "valid", "rendered", "sent", "delivered", "replied"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    funnel.screenshot(path=str(SCREENSHOTS / "funnel-replied.png"))

    per_day = charts.filter(has_text="Replies, bounces and complaints per day")
    assert "No data yet" not in per_day.inner_text()
    legend = per_day.locator("g.legend text").all_text_contents()
    assert legend == ["reply", "auto-reply", "hard bounce", "soft bounce"]
    section = page.locator('[data-testid="stVerticalBlock"]').filter(
        has=page.get_by_role("heading", name="What came back")
    )
    page.get_by_role("heading", name="What came back").scroll_into_view_if_needed()
    box_top = page.get_by_role("heading", name="What came back").bounding_box()
    box_end = page.get_by_role("heading", name="One run's funnel").bounding_box()
    assert section.count() >= 1 and box_top and box_end
    page.screenshot(
        path=str(SCREENSHOTS / "came-back.png"),
        clip={"x": 0, "y": box_top["y"] - 10, "width": 1400,
              "height": box_end["y"] - box_top["y"]},
    )  # fmt: skip


def test_home_shows_reply_and_bounce_rates(page, app_url: str, demo_data) -> None:
    """Verify Home's reply and bounce rates in the browser; screenshot the KPIs."""
    _, _, sent = demo_data
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    page.get_by_text("Last 30 days").wait_for()
    page.wait_for_function(NO_SKELETON)
    rate = page.locator('[data-testid="stMetric"]').filter(has_text="Reply rate")
    values = [v.strip() for v in rate.locator('[data-testid="stMetricValue"]').all_inner_texts()]
    assert values == [f"{3 / (sent - 2):.1%}"] * 2  # 2 hard bounced, 3 replied
    bounce = page.locator('[data-testid="stMetric"]').filter(has_text="Bounce rate")
    values = [v.strip() for v in bounce.locator('[data-testid="stMetricValue"]').all_inner_texts()]
    assert values == [f"{2 / sent:.1%}"] * 2
    deliveries = page.get_by_role("heading", name="Deliveries")
    recent = page.get_by_role("heading", name="Recent runs")
    top, end = deliveries.bounding_box(), recent.bounding_box()
    assert top and end
    page.screenshot(
        path=str(SCREENSHOTS / "home-rates.png"),
        clip={"x": 0, "y": top["y"] - 10, "width": 1400, "height": end["y"] - top["y"]},
    )
