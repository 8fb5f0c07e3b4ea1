"""The Dry run and Runs pages under AppTest with more rows than they list: the tables hold the
first rows only, a caption says so, and the download (made as a click makes it) holds every
row."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.store.tables import deliveries
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.streamed_preflight import SAMPLE_ROWS_PER_STATUS
from tests.e2e.dashboard import HOME, open_test_workspace, send_run

#: valid rows past what the Dry run page lists of one status
VALID = SAMPLE_ROWS_PER_STATUS + 5
#: deliveries past what the Runs page lists
RUN_ROWS = 1005


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], bytes]]:
    """file name -> the data its deferred download button makes when clicked."""
    made: dict[str, Callable[[], bytes]] = {}
    real = MediaFileManager.add_deferred

    def spy(self: MediaFileManager, data_callable: Callable[[], bytes], *a: object, **k: object):
        made[str(k["file_name"])] = data_callable
        return real(self, data_callable, *a, **k)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return made


@pytest.fixture
def seeded(data_dir: Path, tmp_path: Path) -> int:
    """A workflow of VALID recipients and one duplicate, run once; the run grown to RUN_ROWS."""
    ws = open_test_workspace(data_dir)
    rows = "".join(f"p{n}@example.com\n" for n in range(VALID)) + "p0@example.com\n"
    try:
        workflow = services.setup_workflow(
            ws,
            name="many",
            parsed=parse_csv(f"email\n{rows}".encode(), source="many.csv"),
            template=TemplateSource("Hi", None, "Hello"),
            engine_url=f"outbox://{tmp_path / 'outbox'}",
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, skip_mx=True, dedupe_window_hours=0),
            actor="test",
        )
        run_id = send_run(ws, workflow)
        with ws.db.begin() as conn:
            first = conn.execute(
                sa.select(deliveries).where(deliveries.c.run_id == run_id).limit(1)
            ).one()
            model = {k: v for k, v in first._mapping.items() if k != "id"}
            extra = RUN_ROWS - (VALID + 1)
            conn.execute(deliveries.insert(), [{**model, "email": f"x{n}@example.com"}
                                               for n in range(extra)])  # fmt: skip
    finally:
        ws.close()
    return run_id


def _open(script: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    at.switch_page(script).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]


def test_dry_run_page_lists_the_first_rows_of_each_status_and_downloads_all(
    seeded: int, deferred: dict[str, Callable[[], bytes]]
) -> None:
    """Verify the table lists SAMPLE_ROWS_PER_STATUS valid rows and the duplicate, the
    metrics count every row, and the CSV made on click holds all of them."""
    at = _open("pages/dry_run.py")
    at.button(key="dry_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert {m.label: m.value for m in at.metric}["valid"] == str(VALID)
    table = at.dataframe[-1].value
    assert len(table) == SAMPLE_ROWS_PER_STATUS + 1
    assert any("first 200 rows of each status" in c.value for c in at.caption)
    rows = _csv_rows(deferred["dry-run.csv"]())
    assert len(rows) == VALID + 1
    assert rows[-1][0] == "p0@example.com" and "duplicate" in rows[-1]


def test_runs_page_lists_the_first_recipients_and_downloads_all(
    seeded: int, deferred: dict[str, Callable[[], bytes]]
) -> None:
    """Verify the Runs page lists its first 1,000 recipients and its CSV holds all."""
    at = _open("pages/runs.py")
    assert len(at.dataframe[-1].value) == 1000
    assert any("first 1,000 recipients" in c.value for c in at.caption)
    rows = _csv_rows(deferred[f"run-{seeded}.csv"]())
    assert len(rows) == RUN_ROWS
