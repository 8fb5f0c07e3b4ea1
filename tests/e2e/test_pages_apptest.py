"""Home.py and its pages under Streamlit's AppTest: wiring from widgets to services and back."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import RunStatus, services
from outreach_core.services.run_summaries import EXPORT_COLUMNS
from tests.e2e.dashboard import HOME, REPO, Demo, send_run

COUNT_LABELS = ["Audiences", "Templates", "Engines", "Workflows"]
RUN_METRICS = ["Sent", "Failed", "Deferred", "Unknown", "Skipped", "Pending"]


def start() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def count_metrics(at: AppTest) -> dict[str, str]:
    """Home's workspace counts (its delivery KPIs are checked in test_results_pages)."""
    return {label: value for label, value in metrics(at).items() if label in COUNT_LABELS}


def checklist(at: AppTest) -> dict[str, str]:
    """Checklist label -> its mark (✓ or ○), read from the markdown lines."""
    items = (re.match(r":\w+\[([✓○])\] \*\*(.+?)\*\*", md.value) for md in at.markdown)
    return {m[2]: m[1] for m in items if m}


def test_empty_workspace_shows_zeros_checklist_and_empty_states(data_dir: Path) -> None:
    at = start()

    assert at.title[0].value == "Overview"
    assert count_metrics(at) == dict.fromkeys(COUNT_LABELS, "0")
    assert not at.dataframe
    assert any("No runs yet" in info.value for info in at.info)
    assert any("No workflow yet" in info.value for info in at.info)
    assert not at.button  # nothing to queue without a workflow
    assert checklist(at) == {
        "Import an audience": "○",
        "Save a template": "○",
        "Configure an engine": "○",
        "Create a workflow": "○",
        "Send a first run": "○",
    }
    command = " ".join(at.code[0].value.replace("\\\n", " ").split())
    assert command == "python -m outreach_core send contacts.csv --template DIR --engine URL"
    caption = at.sidebar.caption[0].value
    assert caption == f"Database: sqlite · {(data_dir / 'outreach.db').resolve()}"


def test_demo_before_a_run_counts_everything_but_has_no_runs(demo: Demo) -> None:
    at = start()

    assert count_metrics(at) == dict.fromkeys(COUNT_LABELS, "1")
    assert not at.dataframe
    assert any("No runs yet" in info.value for info in at.info)
    marks = checklist(at)
    assert marks.pop("Send a first run") == "○"
    assert set(marks.values()) == {"✓"}
    assert at.selectbox(key="send_workflow").options == ["Demo: spring workshop"]


def test_demo_after_a_run_lists_it_with_its_counts(demo: Demo) -> None:
    run_id = send_run(demo.ws, demo.workflow)

    at = start()

    assert count_metrics(at) == dict.fromkeys(COUNT_LABELS, "1")
    runs = at.dataframe[0].value
    assert list(runs.columns) == [
        "Run",
        "Workflow",
        "State",
        "Created",
        "Sent",
        "Failed",
        "Skipped",
        "Total",
    ]
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["Run"] == run_id
    assert row["Workflow"] == "Demo: spring workshop"
    assert row["State"] == "COMPLETED"
    assert (row["Sent"], row["Failed"], row["Skipped"], row["Total"]) == (50, 0, 4, 54)
    assert set(checklist(at).values()) == {"✓"}


def test_runs_page_shows_the_ledger_its_counts_and_a_download(demo: Demo) -> None:
    run_id = send_run(demo.ws, demo.workflow)
    at = start()

    at.switch_page("pages/runs.py").run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Runs"
    assert at.selectbox(key="run_id").value == run_id
    ledger = at.dataframe[0].value
    assert list(ledger.columns) == EXPORT_COLUMNS
    assert len(ledger) == 54
    by_status = Counter(ledger["status"])
    expected = {
        "Sent": by_status["sent"],
        "Failed": by_status["failed"],
        "Deferred": by_status["deferred"],
        "Unknown": by_status["unknown"],
        "Skipped": by_status["skipped"],
        "Cancelled": by_status["cancelled"],
        "Pending": by_status["pending"] + by_status["sending"],
    }
    assert metrics(at) == {label: str(value) for label, value in expected.items()}
    assert metrics(at)["Sent"] == "50"
    assert metrics(at)["Skipped"] == "4"
    assert "**COMPLETED**" in at.markdown[0].value
    assert [b.label for b in at.download_button] == ["Download CSV"]
    # The CSV is made when clicked (a deferred download); the browser test checks its bytes.
    assert at.download_button[0].proto.deferred_file_id


def test_runs_page_picks_another_run(demo: Demo) -> None:
    first = send_run(demo.ws, demo.workflow)
    queued = services.queue_run(demo.ws, demo.workflow.id, trigger="test", actor="test")
    at = start()
    at.switch_page("pages/runs.py").run()
    assert at.selectbox(key="run_id").value == queued  # newest first
    assert metrics(at)["Sent"] == "0"
    assert "**QUEUED**" in at.markdown[0].value

    at.selectbox(key="run_id").select(first).run()

    assert not at.exception
    assert metrics(at)["Sent"] == "50"
    assert len(at.dataframe[0].value) == 54


def test_runs_page_without_runs_says_so(data_dir: Path) -> None:
    at = start()

    at.switch_page("pages/runs.py").run()

    assert not at.exception
    assert any("No runs yet" in info.value for info in at.info)
    assert not at.dataframe
    assert not at.download_button


def test_queue_run_button_queues_a_run_for_the_daemon(demo: Demo) -> None:
    """Verify "Queue run" first shows the pre-flight's count and queues nothing; Cancel closes
    it; ticking "I confirm sending to 50 recipients" and queueing makes exactly one run."""
    at = start()

    at.button(key="home_queue").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert services.recent_runs(demo.ws) == []  # asked, not sent
    assert at.checkbox(key="home_confirm").label == "I confirm sending to 50 recipients"
    assert at.button(key="home_now").disabled
    at.button(key="home_cancel").click().run()
    assert not at.checkbox and services.recent_runs(demo.ws) == []

    at.button(key="home_queue").click().run()
    at.checkbox(key="home_confirm").check().run()
    at.button(key="home_now").click().run()

    assert not at.exception
    queued = [s for s in services.recent_runs(demo.ws) if s.run.status is RunStatus.QUEUED]
    assert len(queued) == 1
    run = queued[0].run
    assert run.trigger == "dashboard"
    assert at.success[0].value == f"Run {run.id} queued: the scheduler daemon will send it."
    runs = at.dataframe[0].value  # the callback ran before the table was drawn
    assert list(runs["Run"]) == [run.id]
    assert list(runs["State"]) == ["QUEUED"]

    at.run()  # the message belongs to the click, not to every later rerun
    assert not at.success


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTREACH_DNS_TIMEOUT", "abc"),
        ("OUTREACH_DATABASE_URL", "mysql://x@host/db"),
        ("OUTREACH_DATABASE_URL", "postgresql+psycopg://u@host:99999x/db"),
    ],
)
def test_bad_setting_shows_an_error_not_a_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    at = AppTest.from_file(HOME, default_timeout=30).run()

    assert not at.exception
    assert len(at.error) == 1
    assert name in at.error[0].value
    assert not at.metric
    assert not at.title


def test_unreachable_database_is_named_without_its_password(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://outreach:s3cret-pw@127.0.0.1:1/outreach?connect_timeout=3"
    monkeypatch.setenv("OUTREACH_DATABASE_URL", url)

    at = AppTest.from_file(HOME, default_timeout=30).run()

    assert not at.exception
    message = at.error[0].value
    assert "cannot open the database postgresql+psycopg://outreach:***@127.0.0.1:1/outreach" in (
        message
    )
    assert "s3cret-pw" not in message


@pytest.mark.parametrize(
    "script",
    [
        "Home.py",
        "pages/overview.py",
        "pages/runs.py",
        "pages/templates.py",
        "pages/audiences.py",
        "pages/dry_run.py",
        "pages/send.py",
        "pages/engines.py",
        "pages/schedules.py",
    ],
)
def test_pages_stay_thin(script: str) -> None:
    """Pages call services and reports; the store and SQL stay inside outreach_core."""
    tree = ast.parse((REPO / script).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    banned = {
        name
        for name in imported
        if name.split(".")[0] == "sqlalchemy" or name.startswith("outreach_core.adapters.store")
    }
    assert not banned
