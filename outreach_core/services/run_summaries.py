"""The per-run outcome as CSV."""

from __future__ import annotations

from pathlib import Path

from outreach_core.adapters.store import deliveries, ledger_queries, retry_waits, runs, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.csv_cells import write_csv
from outreach_core.domain.models import Delivery, RunSummary


def run_summary(ws: Workspace, run_id: int) -> RunSummary:
    """A run with its delivery counts."""
    with ws.db.connect() as conn:
        run = runs.get_run(conn, run_id)
        names = workflows.workflow_names(conn, [run.workflow_id])
        waiting = retry_waits.waiting(conn, run.id)
        return RunSummary(
            run=run,
            workflow_name=names.get(run.workflow_id, "?"),
            counts=deliveries.counts(conn, run.id),
            retries_waiting=waiting.count,
            next_retry_at=waiting.next_at,
        )


def waiting_deliveries(ws: Workspace, run_id: int, *, limit: int = 500) -> list[Delivery]:
    """The run's deferred deliveries waiting for their scheduled retry, the soonest first."""
    with ws.db.connect() as conn:
        return retry_waits.list_waiting(conn, run_id, limit=limit)


EXPORT_COLUMNS = [
    "delivery_id",
    "row_number",
    "email",
    "status",
    "reason",
    "attempts",
    "message_id",
    "sent_at",
    # the workflow step, and what came back (`Feedback`: replied, bounced, ...) and when
    "step",
    "feedback",
    "feedback_at",
]


def run_outcome_rows(ws: Workspace, run_id: int) -> list[list[object]]:
    """One row per recipient: what happened and why, and what came back. Holds no variables
    and no secret."""
    with ws.db.connect() as conn:
        runs.get_run(conn, run_id)
        return [
            [
                d.id,
                d.row_number if d.row_number is not None else "",
                d.email,
                str(d.status),
                d.reason or "",
                d.attempts,
                d.message_id or "",
                d.sent_at.isoformat() if d.sent_at else "",
                d.step,
                d.feedback or "",
                d.feedback_at.isoformat() if d.feedback_at else "",
            ]
            for d in ledger_queries.run_outcomes(conn, run_id)
        ]


def run_outcome_csv(ws: Workspace, run_id: int) -> str:
    """The outcome rows as CSV text with a header line (formula-like cells neutralised)."""
    return _to_csv(run_outcome_rows(ws, run_id))


def _to_csv(rows: list[list[object]]) -> str:
    return write_csv(EXPORT_COLUMNS, rows, lineterminator="\r\n")


def export_run(ws: Workspace, run_id: int, out: Path) -> int:
    """Write the run's outcome CSV; returns the number of recipients written."""
    rows = run_outcome_rows(ws, run_id)
    out.write_text(_to_csv(rows), encoding="utf-8", newline="")
    return len(rows)
