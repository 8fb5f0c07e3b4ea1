"""The dashboard's CSV downloads under AppTest, over contacts whose values are spreadsheet
formulas: the bytes each download button serves (read from Streamlit's media file manager,
deferred ones made as a click would) hold no cell a spreadsheet would run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.domain.models import SendOptions, SuppressionReason
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import compliance
from tests.csv_attacks import ATTACKS, SIGNED_ADDRESSES, assert_no_formula, contacts_csv
from tests.e2e.dashboard import HOME, open_test_workspace, send_run

#: a workflow named like a formula: its name is a cell of the recent-runs download
WORKFLOW = ATTACKS[1]


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], str]]:
    """file name -> the text its download button serves (deferred data made when read)."""
    served: dict[str, Callable[[], str]] = {}

    def text(data: Any) -> str:
        return data.decode("utf-8") if isinstance(data, bytes) else str(data)

    def spy(real: Callable[..., str], data_arg: str, deferred: bool) -> Callable[..., str]:
        def wrapper(*args: Any, **kwargs: Any) -> str:
            bound = inspect.signature(real).bind(*args, **kwargs).arguments
            data = bound[data_arg]
            served[bound["file_name"]] = (lambda: text(data())) if deferred else lambda: text(data)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(MediaFileManager, "add", spy(MediaFileManager.add, "path_or_data", False))
    monkeypatch.setattr(
        MediaFileManager,
        "add_deferred",
        spy(MediaFileManager.add_deferred, "data_callable", True),
    )
    return served


@pytest.fixture
def seeded(data_dir: Path, tmp_path: Path) -> int:
    """The formula contacts as a workflow, run once; suppressions with signed addresses."""
    ws = open_test_workspace(data_dir)
    try:
        workflow = services.setup_workflow(
            ws,
            name=WORKFLOW,
            parsed=parse_csv(contacts_csv(), source="contacts.csv"),
            template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
            engine_url=f"outbox://{tmp_path / 'outbox'}",
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0),
            actor="test",
        )
        run_id = send_run(ws, workflow)
        for address in SIGNED_ADDRESSES:
            compliance.suppress(
                ws, address, reason=SuppressionReason.MANUAL, actor="t", source=ATTACKS[0]
            )
    finally:
        ws.close()
    return run_id


def open_page(script: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page(script).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dry_run_download(seeded: int, downloads: dict[str, Callable[[], str]]) -> None:
    """Verify the Dry run page's CSV: names, the attacked header, the addresses."""
    at = open_page("pages/dry_run.py")
    at.button(key="dry_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert_no_formula(downloads["dry-run.csv"](), expect=[*ATTACKS, *SIGNED_ADDRESSES])


def test_runs_page_download(seeded: int, downloads: dict[str, Callable[[], str]]) -> None:
    """Verify the Runs page's deferred CSV, made as a click would make it."""
    open_page("pages/runs.py")
    assert_no_formula(downloads[f"run-{seeded}.csv"](), expect=[ATTACKS[1], *SIGNED_ADDRESSES])


def test_results_and_overview_downloads(
    seeded: int, downloads: dict[str, Callable[[], str]]
) -> None:
    """Verify the Results page's ledger and recipient history, and Home's recent runs (the
    workflow's name is a formula)."""
    at = open_page("pages/results.py")
    at.text_input(key="history_email").input(SIGNED_ADDRESSES[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert_no_formula(downloads["ledger-page-1.csv"](), expect=[ATTACKS[1], *SIGNED_ADDRESSES])
    assert_no_formula(downloads["recipient-history.csv"](), expect=[SIGNED_ADDRESSES[0]])
    for made in downloads.values():  # every download the page offers
        assert_no_formula(made(), expect=[])
    downloads.clear()
    open_page("pages/overview.py")
    assert_no_formula(downloads["recent-runs.csv"](), expect=[WORKFLOW])


def test_suppressions_download(seeded: int, downloads: dict[str, Callable[[], str]]) -> None:
    """Verify the Suppressions page's export: signed addresses, a formula source."""
    open_page("pages/suppressions.py")
    assert_no_formula(downloads["suppressions.csv"](), expect=[ATTACKS[0], *SIGNED_ADDRESSES])


def test_audiences_rejected_rows_download(
    data_dir: Path, downloads: dict[str, Callable[[], str]]
) -> None:
    """Verify the Audiences page's rejected rows: an address that is a formula."""
    at = open_page("pages/audiences.py")
    at.file_uploader(key="upload").upload("contacts.csv", contacts_csv(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert_no_formula(downloads["rejected.csv"](), expect=[ATTACKS[1]])
