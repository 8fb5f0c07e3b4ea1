"""Recurring audiences: a workflow whose audience is a saved SQL query re-runs it for every run.

The query may use `:last_run_at` (when this workflow's last *completed* run was created; the
Unix epoch before the first one) and `:run_date` (the run's date). Deliberate: a run that failed,
for instance because the query failed, does not move `:last_run_at`, so the next run still
covers the contacts the failed one would have mailed. The rows lose their control characters
as an imported file's do (`sources.as_parsed_file`), one log line per cell cleaned.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from outreach_core.adapters import crypto
from outreach_core.adapters.sql_runner import FIRST_RUN_SINCE, run_query
from outreach_core.adapters.store import audiences, runs, sql_sources, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Run
from outreach_core.services.sources import as_parsed_file

log = logging.getLogger("outreach.executor")


def last_completed_at(ws: Workspace, run: Run) -> datetime:
    """When the workflow's latest COMPLETED run before this one was created."""
    with ws.db.connect() as conn:
        found = runs.last_completed_before(conn, run.workflow_id, before_run_id=run.id)
    return found or FIRST_RUN_SINCE


def query_rows(ws: Workspace, run: Run) -> list[tuple[int, dict[str, Any]]] | None:
    """The audience rows of this run, freshly queried; None when the audience is not SQL.

    Raises SourceError (connection, SQL, timeout, row cap) or InputError (a parameter without
    a value, the email column gone): the run then fails with that reason.
    """
    with ws.db.connect() as conn:
        audience_id = workflows.get_workflow(conn, run.workflow_id).audience_id
        audience = audiences.get_audience(conn, audience_id)
        if audience.sql_source_id is None:
            return None
        source, encrypted = sql_sources.get_source(conn, audience.sql_source_id)
    result = run_query(
        crypto.decrypt(ws.fernet, encrypted),
        source["query"],
        values=dict(source["parameters"]),
        run_date=run.created_at,
        row_cap=source["row_cap"],
        timeout_s=source["timeout_s"],
        extra={"last_run_at": last_completed_at(ws, run)},
    )
    parsed = as_parsed_file(
        result, source=f"SQL source {source['name']!r}", email_column=audience.email_column
    )
    for note in parsed.notes:  # control characters removed from the rows, cell by cell
        log.warning("run %s: %s: %s", run.id, parsed.source, note)
    return list(enumerate(parsed.rows, start=1))
