"""One run's line in `runs`: unknown and pending in columns of their own, never in failed."""

from __future__ import annotations

from datetime import UTC, datetime

from outreach_core.domain.models import Run, RunCounts, RunSummary, SendOptions
from outreach_core.domain.states import RunStatus
from outreach_core.entrypoints.cli.sending import runs_line

CREATED = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def summary(counts: RunCounts, *, waiting: int = 0, status: RunStatus = RunStatus.PAUSED):
    run = Run(
        id=7, workflow_id=1, status=status, trigger="cli", options=SendOptions(),
        template_version_id=1, engine_id=1, worker_id=None, heartbeat_at=None,
        created_at=CREATED, started_at=CREATED, finished_at=None, status_reason=None,
    )  # fmt: skip
    return RunSummary(run=run, workflow_name="spring", counts=counts, retries_waiting=waiting)


def test_unknown_pending_and_waiting_are_apart_from_failed() -> None:
    """Verify failed = failed + deferred without a scheduled retry; unknown, pending (with
    sending) and waiting each in their own column."""
    counts = RunCounts(
        total=30, sent=8, failed=2, deferred=3, unknown=4, skipped=1, pending=5, sending=1,
        cancelled=6,
    )  # fmt: skip
    line = runs_line(summary(counts, waiting=1))
    assert line.split() == [
        "7", "PAUSED", "2026-12-05", "09:30:00",
        "8", "4", "4", "1", "6", "1", "-", "6", "spring",
    ]  # fmt: skip


def test_a_paused_run_with_nothing_attempted_shows_its_pending_rows() -> None:
    """Verify a paused run that sent nothing yet is not 0/0/0: its pending rows show."""
    line = runs_line(summary(RunCounts(total=12, pending=12)))
    assert line.split()[4:10] == ["0", "0", "0", "0", "12", "0"]
