"""Home's delivery KPIs and the Results page in a real browser (Debian's chromium, Playwright),
over the demo workspace after a sent run with a few refusals; screenshots of both pages go
to test-artifacts/screenshots/ (home.png, results.png), and a chart's CSV is downloaded."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.adapters.store import deliveries
from outreach_core.adapters.store.tables import deliveries as ledger
from outreach_core.services.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    launched_chromium,
    open_test_workspace,
    opened_page,
    send_run,
    serve_app,
)

pytestmark = pytest.mark.browser

#: Results draws six charts: per day, domain, engine, errors, latency, the funnel
CHARTS = 6
NO_SKELETON = "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The demo loaded, one run sent, three of its sends turned into refusals with codes;
    returns the folder and the run's counts per status."""
    data = tmp_path_factory.mktemp("results-browser") / "data"
    ws = open_test_workspace(data)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        run_id = send_run(ws, workflow)
        with ws.db.begin() as conn:
            sent = [d.id for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"]
            for delivery_id, status, code, reason in [
                (sent[0], "failed", 550, "permanent: 550 no such user"),
                (sent[1], "failed", 550, "permanent: 550 no such user"),
                (sent[2], "deferred", 421, "transient: 421 try again later"),
            ]:
                conn.execute(
                    ledger.update()
                    .where(ledger.c.id == delivery_id)
                    .values(status=status, reply_code=code, reason=reason, sent_at=None)
                )
            counts = deliveries.counts(conn, run_id)
        return data, counts.model_dump()
    finally:
        ws.close()


@pytest.fixture(scope="module")
def app_url(
    demo_data: tuple[Path, dict[str, int]], chromium_path: str, dns_server: DnsServer
) -> Iterator[str]:
    with serve_app(demo_data[0], nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    # tall enough for the whole Results page: Streamlit scrolls inside its own container
    with opened_page(
        browser,
        timeout_ms=30_000,
        viewport={"width": 1400, "height": 1300},
        accept_downloads=True,
        timezone_id="Europe/Paris",
    ) as page:
        yield page


def _metric_values(page, label: str) -> list[str]:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return [v.strip() for v in metric.locator('[data-testid="stMetricValue"]').all_inner_texts()]


def test_home_shows_the_delivery_kpis(page, app_url: str, demo_data) -> None:
    """Verify Home's KPIs for 7 and 30 days in the browser, then screenshot it."""
    _, counts = demo_data
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    page.get_by_role("heading", name="Deliveries").wait_for()
    page.get_by_text("Last 30 days").wait_for()
    page.wait_for_function(NO_SKELETON)

    failed = counts["failed"] + counts["deferred"] + counts["unknown"]
    assert (
        _metric_values(page, "Delivery rate")
        == [f"{counts['sent'] / (counts['sent'] + failed):.1%}"] * 2
    )
    skipped = page.locator('[data-testid="stMetric"]').filter(has_text="Skipped")
    assert [
        v.strip() for v in skipped.locator('[data-testid="stMetricValue"]').all_inner_texts()
    ] == [str(counts["skipped"])] * 2

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"))


def test_results_page_draws_every_chart_and_downloads_a_csv(page, app_url: str, demo_data) -> None:
    """Verify Results draws its charts in the browser's zone, the per-day CSV downloads with
    the run's counts, then screenshot the whole page."""
    _, counts = demo_data
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)
    page.get_by_role("link", name="Results").click()
    page.get_by_role("heading", name="Results").wait_for()
    page.get_by_text("Days are in your time zone, Europe/Paris.").wait_for()
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= {CHARTS}"
    )
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.wait_for_function(NO_SKELETON)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").first.click()
    assert download.value.suggested_filename == "outcomes-per-day.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    by_outcome: dict[str, int] = {}
    for row in rows:
        base = row["outcome"].split(":", 1)[0]
        by_outcome[base] = by_outcome.get(base, 0) + int(row["count"])
    assert by_outcome == {
        s: counts[s] for s in ("sent", "failed", "deferred", "skipped") if counts[s]
    }

    main = page.locator('[data-testid="stMain"]')
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
    )
    page.set_viewport_size({"width": 1400, "height": int(height) + 200})
    page.wait_for_function(NO_SKELETON)
    page.wait_for_timeout(500)  # let plotly re-lay out the charts at the new size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    main.screenshot(path=str(SCREENSHOTS / "results.png"))
