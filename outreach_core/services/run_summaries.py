"""The per-run outcome as CSV."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from outreach_core.adapters.csv_files import csv_part_file, write_csv_rows
from outreach_core.adapters.store import deliveries, ledger_queries, retry_waits, runs, workflows
from outreach_core.adapters.workspace import Workspace
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


def run_outcome_rows(ws: Workspace, run_id: int, *, limit: int | None = None) -> list[list[object]]:
    """One row per recipient: what happened and why, and what came back. Holds no variables
    and no secret. `limit`: the first rows only (what a page shows)."""
    return list(itertools.islice(iter_run_outcome_rows(ws, run_id), limit))


def iter_run_outcome_rows(ws: Workspace, run_id: int) -> Iterator[list[object]]:
    """`run_outcome_rows` read in chunks (a server-side cursor on PostgreSQL): what the export
    and the downloads write, in memory that does not grow with the run."""
    with ws.db.connect() as conn:
        runs.get_run(conn, run_id)
        for d in ledger_queries.iter_run_outcomes(conn, run_id):
            yield [
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


def write_run_outcomes(ws: Workspace, run_id: int, out: TextIO) -> int:
    """The outcome CSV (header line, formula-like cells neutralised) written to `out` row by
    row; returns the number of recipients written."""
    return write_csv_rows(
        out, EXPORT_COLUMNS, iter_run_outcome_rows(ws, run_id), lineterminator="\r\n"
    )


def run_outcome_csv(ws: Workspace, run_id: int) -> str:
    """The outcome rows as CSV text with a header line (formula-like cells neutralised): for
    small runs and tests; files and downloads use `write_run_outcomes`."""
    text = io.StringIO(newline="")
    write_run_outcomes(ws, run_id, text)
    return text.getvalue()


def export_run(ws: Workspace, run_id: int, out: Path) -> int:
    """Write the run's outcome CSV through `<out>.part`, renamed to `out` once complete;
    returns the number of recipients written."""
    _check_run_exists(ws, run_id)  # an unknown run raises before any file is made
    with csv_part_file(out) as text:
        return write_run_outcomes(ws, run_id, text)


def _check_run_exists(ws: Workspace, run_id: int) -> None:
    """Raises the store's not-found error for an unknown run."""
    with ws.db.connect() as conn:
        runs.get_run(conn, run_id)
