"""Recurring audiences: a workflow whose audience is a saved SQL query re-runs it for every run.

The query may use `:last_run_at` (when this workflow's last *completed* run was created; the
Unix epoch before the first one) and `:run_date` (the run's date). Deliberate: a run that failed,
for instance because the query failed, does not move `:last_run_at`, so the next run still
covers the contacts the failed one would have mailed. The rows lose their control characters
as an imported file's do (`source_streams`), one log line per cell cleaned. The rows are
read in chunks from a server-side cursor (`sql_stream`) while the freeze writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from outreach_core.adapters import crypto
from outreach_core.adapters.sql_runner import FIRST_RUN_SINCE
from outreach_core.adapters.sql_stream import stream_query
from outreach_core.adapters.store import audiences, runs, sql_sources, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Run
from outreach_core.services.source_streams import SourceShape, numbered_rows, shape_of

log = logging.getLogger("outreach.executor")


def last_completed_at(ws: Workspace, run: Run) -> datetime:
    """When the workflow's latest COMPLETED run before this one was created."""
    with ws.db.connect() as conn:
        found = runs.last_completed_before(conn, run.workflow_id, before_run_id=run.id)
    return found or FIRST_RUN_SINCE


@contextmanager
def queried_rows(ws: Workspace, run: Run) -> Iterator[Iterator[tuple[int, dict[str, Any]]] | None]:
    """The audience rows of this run, freshly queried and read as they are walked (inside the
    `with`); None when the audience is not SQL.

    Raises SourceError (connection, SQL, timeout, the row cap, also while the rows are
    walked) or InputError (a parameter without a value, the email column gone): the run then
    fails with that reason.
    """
    with ws.db.connect() as conn:
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
        audience = audiences.get_audience(conn, audience_id)
        found = None
        if audience.sql_source_id is not None:
            found = sql_sources.get_source(conn, audience.sql_source_id)
    if found is None:
        yield None
        return
    source, encrypted = found
    with stream_query(
        crypto.decrypt(ws.fernet, encrypted),
        source["query"],
        values=dict(source["parameters"]),
        run_date=run.created_at,
        row_cap=source["row_cap"],
        timeout_s=source["timeout_s"],
        extra={"last_run_at": last_completed_at(ws, run)},
    ) as stream:
        shape = shape_of(
            stream, source=f"SQL source {source['name']!r}", email_column=audience.email_column
        )
        yield _logging_notes(run, numbered_rows(stream, shape), shape)


def _logging_notes(
    run: Run, rows: Iterator[tuple[int, dict[str, Any]]], shape: SourceShape
) -> Iterator[tuple[int, dict[str, Any]]]:
    yield from rows
    for note in shape.all_notes():  # control characters removed from the rows, cell by cell
        log.warning("run %s: %s: %s", run.id, shape.source, note)
