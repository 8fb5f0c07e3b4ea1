"""A large CSV uploaded on the Audiences page in a real browser (Debian's chromium, Playwright):
the progress bar shows while the file is read and while it is imported, and every row is
stored. 50,000 rows by default; 1,000,000 with OUTREACH_BROWSER_IMPORT_1M=1, which also
prints the dashboard process's peak memory (VmHWM). Screenshots: test-artifacts/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from outreach_core import services
from tests.e2e.dashboard import (
    SCREENSHOTS,
    launched_chromium,
    open_test_workspace,
    opened_page,
    serve_app,
)

from conftest import catch_all_dns

BIG = os.environ.get("OUTREACH_BROWSER_IMPORT_1M") == "1"
# a million rows are read, then read and stored: minutes, past the suite's per-test limit
pytestmark = [pytest.mark.browser, *([pytest.mark.timeout(1800)] if BIG else [])]
ROWS = 1_000_000 if BIG else 50_000
PROGRESS = '[data-testid="stProgress"]'


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("import-progress") / "data"
    open_test_workspace(folder).close()
    return folder


@pytest.fixture(scope="module")
def app_url(data: Path, chromium_path: str) -> Iterator[str]:
    with serve_app(data, nameserver=catch_all_dns()) as url:
        yield url


def _contacts(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("Email,First name,Last name,Company\n")
        for n in range(rows):
            out.write(f"person{n}@example{n % 50}.com,First{n},Last{n},Company {n % 1000}\n")
    return path


def _shot(page: object, name: str, bar: bool = True) -> None:
    """A screenshot of the window, scrolled to the progress bar (`bar`)."""
    if bar:
        page.locator(PROGRESS).last.scroll_into_view_if_needed()  # type: ignore[attr-defined]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=False)  # type: ignore[attr-defined]


#: true once the last progress bar reads otherwise than `first` while importing; with `strict`
#: false (a small file, whose import may end before the bar is drawn again, or before `first`
#: was read: the bar then stays at 100%) also once it reads anything else, reads 100%, or is
#: gone
_BAR_MOVED = """([selector, first, strict]) => {
    const bars = document.querySelectorAll(selector);
    const text = bars.length ? bars[bars.length - 1].innerText : null;
    if (!text) return !strict;
    if (text !== first) return text.startsWith("Importing") || !strict;
    return !strict && text.includes("(100%)");
}"""


def _dashboard_peak_mb(port: int) -> float | None:
    """VmHWM of the `streamlit run` process serving `port` (read from /proc)."""
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = status.read_bytes().split(b"\0")
            if b"streamlit" in b" ".join(cmdline) and str(port).encode() in cmdline:
                for line in (status.parent / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue  # a process that ended while the folder was read
    return None


def test_large_csv_import_shows_progress_and_stores_every_row(
    chromium_path: str, app_url: str, data: Path, tmp_path: Path
) -> None:
    """Verify the progress bar is visible while reading and importing, the counts, and every
    row stored."""
    file = _contacts(tmp_path / "big.csv", ROWS)
    wait_ms = 900_000 if BIG else 60_000
    suffix = "-1m" if BIG else ""
    with (
        launched_chromium(chromium_path) as browser,
        opened_page(browser, timeout_ms=wait_ms, viewport={"width": 1400, "height": 1000}) as page,
    ):
        page.goto(app_url)
        page.get_by_role("link", name="Audiences").first.click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(file))
        page.locator(PROGRESS).get_by_text("Reading the file:").wait_for()
        _shot(page, f"import-reading{suffix}.png")
        page.get_by_text(f"Reading the file: {ROWS:,} rows read (100%)").wait_for()
        page.get_by_role("button", name="Import audience").click()
        page.locator(PROGRESS).get_by_text("Importing:").wait_for()
        first = page.locator(PROGRESS).last.inner_text()
        _shot(page, f"import-progress{suffix}.png")
        # the page stays live while the rows are stored: it scrolls, and the bar moves on
        page.mouse.wheel(0, 300)
        page.wait_for_function(_BAR_MOVED, arg=[PROGRESS, first, BIG])
        if BIG:
            _shot(page, f"import-progress-later{suffix}.png")
        page.get_by_text(f"{ROWS} rows to send to, 0 rejected, 0 duplicates").wait_for()
        page.get_by_text("rows to send to").scroll_into_view_if_needed()
        _shot(page, f"import-done{suffix}.png", bar=False)
    if BIG:
        peak = _dashboard_peak_mb(urlsplit(app_url).port or 0)
        print(f"dashboard VmHWM after the import: {peak} MB")
        (SCREENSHOTS / "import-1m-vmhwm.txt").write_text(f"{peak}\n")
    ws = open_test_workspace(data)
    try:
        assert [(a.name, a.row_count) for a in services.list_audiences(ws)] == [("big", ROWS)]
    finally:
        ws.close()
