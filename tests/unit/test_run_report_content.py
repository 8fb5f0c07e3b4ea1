"""The run report's content, built purely from a summary and outcome rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from outreach_core.domain.csv_cells import neutralise
from outreach_core.domain.models import Run, RunCounts, RunSummary, SendOptions
from outreach_core.domain.states import RunStatus
from outreach_core.services.sending.report import FIRST_FAILED, build_report

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def summary(counts: RunCounts) -> RunSummary:
    run = Run(
        id=9, workflow_id=1, status=RunStatus.COMPLETED, trigger="test", options=SendOptions(),
        template_version_id=1, engine_id=1, worker_id=None, heartbeat_at=None,
        created_at=START, started_at=START, finished_at=START + timedelta(seconds=90),
        status_reason=None,
    )  # fmt: skip
    return RunSummary(run=run, workflow_name="wf", counts=counts)


def row(n: int, status: str, reason: str = "") -> list[object]:
    return [n, n, f"p{n}@example.org", status, reason, 1, "", ""]


def test_report_lists_top_reasons_first_50_failed_rows_escaped_and_the_rate() -> None:
    """Verify 60 failures: top reasons counted, only the first 50 rows listed, reasons with
    markup escaped in HTML, duration and delivery rate stated."""
    rows = [row(n, "sent") for n in range(40)]
    rows += [row(100 + n, "failed", "permanent: 550 <no such user>") for n in range(55)]
    rows += [row(200 + n, "unknown", "ambiguous: dropped after DATA") for n in range(5)]
    counts = RunCounts(total=100, sent=40, failed=55, unknown=5)

    report = build_report(summary(counts), rows)

    assert "55 x permanent: 550 <no such user>" in report.text
    assert "5 x ambiguous: dropped after DATA" in report.text
    assert f"First {FIRST_FAILED} failed rows:" in report.text
    assert "p149@example.org" in report.text and "p150@example.org" not in report.text
    assert "Duration: 90 s" in report.text
    assert "Delivery rate (sent of attempted): 40.0%" in report.text
    assert "&lt;no such user&gt;" in report.html and "<no such user>" not in report.html
    assert report.csv.count("\n") == len(rows) + 1


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    """Verify =, +, -, @ at the start of a cell get a leading apostrophe; others stay."""
    assert [neutralise(v) for v in ["=1+1", "+x", "-x", "@x", "ann@example.org", 3]] == [
        "'=1+1", "'+x", "'-x", "'@x", "ann@example.org", "3",
    ]  # fmt: skip


def test_report_reads_its_rows_once_and_attaches_the_first_ones() -> None:
    """Verify the rows are read once as a stream: past `attached_rows` they are counted, not
    attached, and the text and HTML say how to get them all."""
    rows = (row(n, "failed" if n == 6 else "sent", "permanent: 550") for n in range(7))
    report = build_report(summary(RunCounts(total=7, sent=6, failed=1)), rows, attached_rows=3)
    assert report.csv.count("\r\n") == 4 and "p2@example.org" in report.csv
    assert "p3@example.org" not in report.csv
    assert "1 x permanent: 550" in report.text and "p6@example.org" in report.text
    assert "first 3 of 7 recipients" in report.text and "export 9 --out FILE" in report.html
