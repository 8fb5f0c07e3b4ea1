"""Importing contacts exports and managing audiences in a real browser (Debian's chromium,
Playwright), over one dashboard with the demo loaded: Google Contacts, Outlook and HubSpot
exports import with their columns mapped; an audience is searched, renamed and deleted (and
the demo's refused); the Dry run table shows status and reason at 1400 px; and no page asks
any host but the dashboard for anything. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from outreach_core import services
from outreach_core.services.demo import load_demo
from tests.e2e.contact_exports import Export, google_contacts, hubspot, outlook
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    send_run,
    serve_app,
)

from conftest import catch_all_dns

pytestmark = pytest.mark.browser

#: every page, as its sidebar link reads
PAGES = ["Overview", "Audiences", "Dry run", "Workflows", "Send", "Engines", "Runs",
         "Schedules", "Results", "Templates", "Suppressions", "Audit"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("import-browser") / "data"
    ws = open_test_workspace(folder)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        send_run(ws, workflow)  # Home's KPIs then show a delivery rate
    finally:
        ws.close()
    return folder


@pytest.fixture(scope="module")
def app_url(data: Path, chromium_path: str) -> Iterator[str]:
    with serve_app(data, nameserver=catch_all_dns()) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str, app_url: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.fixture
def page(browser, app_url: str) -> Iterator[object]:
    with opened_page(browser, timeout_ms=30_000, viewport={"width": 1400, "height": 1100}) as page:
        yield page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def settled(page) -> None:
    """The script has rerun and drawn everything."""
    page.wait_for_selector(READY)
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
    )


def chosen(page, label: str) -> str:
    """What a select box shows (its combobox input's value)."""
    return page.get_by_role("combobox", name=label).first.input_value()


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_google_outlook_and_hubspot_exports_import_with_columns_mapped(
    page, app_url: str, data: Path, tmp_path: Path
) -> None:
    """Verify each export: its tool named, the email column found (with a preview of its
    values), first/last name and company mapped, every row counted, the import stored with
    the template variables first_name, last_name and company."""
    open_from_overview(page, app_url, "Audiences")
    for export in (google_contacts(), outlook(), hubspot()):
        path = tmp_path / export.name
        path.write_bytes(export.data)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
        page.get_by_text(f"export of {layout_of(export)}").wait_for()
        settled(page)
        assert export.email in chosen(page, "Email column")
        assert "@example" in chosen(page, "Email column")  # the preview
        assert export.first_name in chosen(page, "First name")
        assert export.last_name in chosen(page, "Last name")
        assert export.company in chosen(page, "Company")
        counts = {k: metric(page, k) for k in ("Rows", "Imported", "Rejected", "Duplicates")}
        assert counts == {
            "Rows": str(export.rows),
            "Imported": str(export.imported),
            "Rejected": str(export.rejected),
            "Duplicates": str(export.duplicates),
        }, export.name
        page.get_by_text("1 cell of").first.wait_for()  # the multi-address cell, split
        shot = screenshot(page, f"import-{export.name.split('-')[0]}.png")
        page.get_by_role("button", name="Import audience").click()
        page.get_by_text(f"{export.imported} rows to send to").wait_for()
        settled(page)
        assert shot.exists()
    ws = open_test_workspace(data)
    try:
        stored = {a.name: a for a in services.list_audiences(ws)}
        for name in ("google-contacts", "outlook-contacts", "hubspot-contacts"):
            assert {"first_name", "last_name", "company"} <= set(stored[name].columns), name
            assert stored[name].row_count == 17
    finally:
        ws.close()


def layout_of(export: Export) -> str:
    return {"google": "Google Contacts", "outlook": "Outlook", "hubspot": "HubSpot"}[
        export.name.split("-")[0]
    ]


def test_audience_searched_renamed_deleted_and_demo_delete_refused(
    page, app_url: str, data: Path
) -> None:
    """Verify the Saved audiences tab: the demo audience cannot be deleted (its workflow is
    named), another is searched, renamed and deleted."""
    ws = open_test_workspace(data)
    try:
        from outreach_core.adapters.contact_files import parse_csv

        services.import_audience(
            ws,
            parse_csv(hubspot().data, source="crm.csv"),
            name="CRM leads",
            actor="test",
        )
    finally:
        ws.close()
    open_from_overview(page, app_url, "Audiences")
    page.get_by_role("tab", name="Saved audiences").click()
    pick = page.get_by_role("combobox", name="Audience", exact=True)
    pick.click()
    page.get_by_role("option", name="Demo contacts").click()
    settled(page)
    page.get_by_text("Cannot be deleted while the workflow").wait_for()
    page.get_by_text("Delete 'Demo contacts' and its rows").click()
    page.get_by_role("button", name="Delete audience").click()
    page.get_by_text("is used by the workflow").wait_for()
    refused = screenshot(page, "audience-delete-refused.png")

    pick.click()
    page.get_by_role("option", name="CRM leads").click()
    settled(page)
    page.get_by_role("textbox", name="Search").fill("hopper")
    page.get_by_role("textbox", name="Search").press("Enter")
    page.get_by_text("2 of 17 rows match 'hopper'").wait_for()
    settled(page)
    searched = screenshot(page, "audience-searched.png")

    page.get_by_role("textbox", name="New name").fill("CRM leads (November)")
    page.get_by_role("button", name="Rename").click()
    page.get_by_text("Renamed to").wait_for()
    settled(page)
    renamed = screenshot(page, "audience-renamed.png")
    page.get_by_text("Delete 'CRM leads (November)' and its rows").click()
    page.get_by_role("button", name="Delete audience").click()
    page.get_by_text("Deleted 'CRM leads (November)'.").wait_for()
    settled(page)
    deleted = screenshot(page, "audience-deleted.png")
    ws = open_test_workspace(data)
    try:
        names = [a.name for a in services.list_audiences(ws)]
    finally:
        ws.close()
    assert "Demo contacts" in names and not [n for n in names if n.startswith("CRM")]
    assert all(p.exists() for p in (refused, searched, renamed, deleted))


def test_dry_run_table_shows_status_and_reason_first_at_1400px(page, app_url: str) -> None:
    """Verify the Dry run table's first columns are the checked address, status and reason,
    all inside the table's visible width at a 1400 px wide window."""
    open_from_overview(page, app_url, "Dry run")
    page.get_by_role("button", name="Run dry run").click()
    # the pre-flight's per-reason tables sit in collapsed expanders above; the row-by-row
    # table comes after the Statuses filter, the page's last table
    page.get_by_text("Statuses", exact=True).wait_for()
    grid = page.locator('[data-testid="stDataFrame"]').last
    grid.wait_for()
    settled(page)
    headers = grid.locator('[role="columnheader"]')
    headers.first.wait_for(state="attached")
    names = [h.strip() for h in headers.all_text_contents()]
    assert names[:3] == ["email (checked)", "status", "reason"], names
    box = grid.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1400
    screenshot(page, "dry-run-1400.png")


def test_no_page_asks_another_host(page, app_url: str) -> None:
    """Verify every request (HTTP and websocket) made while visiting every page goes to the
    dashboard's own host and port: no font, icon or script from anywhere else. On the way,
    Overview's KPIs fit their boxes."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.on("websocket", lambda socket: seen.append(socket.url))
    for name in PAGES:
        open_from_overview(page, app_url, name)
        settled(page)
        if name == "Overview":
            # every KPI fits its box: none cut to "100…"
            cut = page.evaluate(
                """() => [...document.querySelectorAll('[data-testid="stMetricValue"] div')]
                    .filter(e => e.scrollWidth > e.clientWidth).map(e => e.textContent)"""
            )
            assert cut == []
            page.get_by_text("100.0%").first.wait_for()
            screenshot(page, "overview-kpis.png")
            # the checklist leads through the pages
            page.get_by_role("link", name="Open Audiences").scroll_into_view_if_needed()
            screenshot(page, "overview-checklist.png")
        if name == "Results":
            page.locator(".js-plotly-plot").first.wait_for()
            screenshot(page, "results.png")
    own = urlsplit(app_url).netloc
    remote = [u for u in seen if urlsplit(u).scheme in ("http", "https", "ws", "wss")
              and urlsplit(u).netloc != own]  # fmt: skip
    assert len(seen) > len(PAGES)
    assert remote == []
    screenshot(page, "no-remote-requests.png")
