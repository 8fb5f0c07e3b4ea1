"""The dashboard in a real browser: Debian's chromium driven by Playwright.

One Streamlit server for the module, on a free port, over a data folder with the demo loaded
and one run sent. Screenshots go to test-artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.services.demo import load_demo
from outreach_core.services.run_summaries import EXPORT_COLUMNS
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    CHROMIUM,
    READY,
    SCREENSHOTS,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    send_run,
    serve_app,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A data folder with the demo loaded and one run sent; returns (folder, run id)."""
    data = tmp_path_factory.mktemp("browser") / "data"
    ws = open_test_workspace(data)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        return data, send_run(ws, workflow)
    finally:
        ws.close()


@pytest.fixture(scope="module")
def app_url(demo_run: tuple[Path, int], chromium_path: str, dns_server: DnsServer) -> Iterator[str]:
    data, _ = demo_run
    with serve_app(data, nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    with opened_page(
        browser, viewport={"width": 1400, "height": 1300}, accept_downloads=True
    ) as page:
        yield page


def _screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path


def _metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_home_shows_counts_recent_run_and_checklist(page, app_url: str, demo_run) -> None:
    _, run_id = demo_run
    page.goto(f"{app_url}/")
    page.wait_for_selector(READY)

    page.get_by_role("heading", name="Overview").wait_for()
    for label in ("Audiences", "Templates", "Engines", "Workflows"):
        assert _metric_value(page, label) == "1", label
    page.get_by_role("heading", name="Recent runs").wait_for()
    grid = page.locator('[data-testid="stDataFrame"]')
    grid.wait_for()
    page.get_by_text("Send a first run").wait_for()
    page.get_by_role("button", name="Queue run").wait_for()
    assert "Database: sqlite" in page.locator('[data-testid="stSidebar"]').inner_text()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    )
    # The grid draws on a canvas; its accessible (hidden) twin holds the cell texts.
    cell = grid.locator('[role="gridcell"]')
    cell.filter(has_text="Demo: spring workshop").wait_for(state="attached")
    cells = cell.all_text_contents()
    run, workflow, state, _created, *numbers = cells
    assert (run, workflow, state) == (str(run_id), "Demo: spring workshop", "COMPLETED")
    assert numbers == ["50", "0", "4", "54"]  # sent, failed, skipped, total

    shot = _screenshot(page, "home.png")
    assert shot.stat().st_size > 10_000


def test_runs_page_downloads_the_ledger_csv(page, app_url: str, demo_run) -> None:
    _, run_id = demo_run
    open_from_overview(page, app_url, "Runs")
    page.locator('[data-testid="stDataFrame"]').wait_for()
    assert _metric_value(page, "Sent") == "50"
    assert _metric_value(page, "Skipped") == "4"
    button = page.get_by_role("button", name="Download CSV")
    button.wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    )
    _screenshot(page, "runs.png")

    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename == f"run-{run_id}.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == EXPORT_COLUMNS
    assert len(rows) - 1 == 54
    statuses = [row[EXPORT_COLUMNS.index("status")] for row in rows[1:]]
    assert statuses.count("sent") == 50
    assert statuses.count("skipped") == 4


def test_dry_run_download_matches_the_table(page, app_url: str) -> None:
    """Verify the Dry run page's CSV download has the table's rows and statuses."""
    open_from_overview(page, app_url, "Dry run")
    page.get_by_role("button", name="Run dry run").click()
    button = page.get_by_role("button", name="Download CSV")
    button.wait_for()
    page.wait_for_selector(READY)
    # the row-by-row table: last, below the tables of the skip reasons' expanders
    grid = page.locator('[data-testid="stDataFrame"]').last
    grid.wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    )
    cell = grid.locator('[role="gridcell"]')
    cell.first.wait_for(state="attached")
    _screenshot(page, "dry-run.png")

    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename == "dry-run.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 54  # every demo contact, in input order
    caption = page.get_by_text("rows ·").inner_text()
    assert caption.startswith(f"{len(rows)} rows")
    statuses = [row["status"] for row in rows]
    for status in set(statuses):
        metric = page.locator('[data-testid="stMetric"]').filter(
            has=page.get_by_text(status, exact=True)
        )
        value = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        assert value == str(statuses.count(status)), status
    # The grid draws on a canvas; its accessible twin holds the rendered rows' cell texts.
    grid_rows = grid.locator('[role="row"]').all()
    shown = [r.locator('[role="gridcell"]').all_text_contents() for r in grid_rows]
    shown = [cells for cells in shown if cells]
    assert len(shown) >= 5
    # the table starts with what a person reads first; the CSV keeps the input's order
    headings = [h.strip() for h in grid.locator('[role="columnheader"]').all_text_contents()]
    columns = [{"email (checked)": "email_normalized"}.get(h, h) for h in headings]
    assert columns[:3] == ["email_normalized", "status", "reason"], headings
    for number, cells in enumerate(shown):
        # columns right of the viewport are not rendered; status and reason must be
        assert len(cells) >= 3, cells
        expected = [rows[number][c] for c in columns][: len(cells)]
        assert [c.strip() for c in cells] == expected, number


def test_audiences_page_upload_shows_counts_and_rejected_rows(
    page, app_url: str, tmp_path: Path
) -> None:
    """Verify a file chosen in the browser is counted: rows, imported, rejected, duplicates."""
    upload = tmp_path / "people.csv"
    upload.write_text(
        "Email;Name\nann@example.com;Ann\nANN@example.com;Ann twice\n;Nobody\nbob@example.org;Bob\n",
        encoding="utf-8",
    )
    open_from_overview(page, app_url, "Audiences")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
    page.get_by_text("Rejected rows (1)").wait_for()
    page.wait_for_selector(READY)
    assert _metric_value(page, "Rows") == "4"
    assert _metric_value(page, "Imported") == "2"
    assert _metric_value(page, "Rejected") == "1"
    assert _metric_value(page, "Duplicates") == "1"
    _screenshot(page, "audiences.png")


def test_templates_page_previews_html_in_a_sandboxed_frame(page, app_url: str) -> None:
    """Verify the Templates page draws the editor, variables, warnings and the preview, with the
    rendered HTML inside an iframe whose sandbox grants nothing."""
    open_from_overview(page, app_url, "Templates")
    page.get_by_text("Columns: city, company, first_name").wait_for()
    page.get_by_text("no unsubscribe link").wait_for()
    outer = page.frame_locator('[data-testid="stIFrame"]')
    inner = outer.locator('iframe[title="HTML preview"]')
    inner.wait_for()
    assert inner.get_attribute("sandbox") == ""
    outer.frame_locator('iframe[title="HTML preview"]').get_by_text("Hello Ada,").wait_for()
    page.get_by_role("heading", name="Versions").wait_for()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    )
    page.set_viewport_size({"width": 1400, "height": 2000})
    shot = _screenshot(page, "templates.png")
    assert shot.stat().st_size > 10_000


def test_chromium_is_debians() -> None:
    """The recipe needs Debian's browser, never a `playwright install` download."""
    if not shutil.which("chromium") and not os.environ.get("CI"):
        pytest.skip("chromium is not on PATH")
    assert Path(CHROMIUM).exists()
