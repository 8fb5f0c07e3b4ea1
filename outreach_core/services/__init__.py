"""Use cases called by the pages, the CLI and the daemon: one transaction each.

One module per aggregate:

- `audiences`: storing an imported contacts file (every row); listing, browsing (rows with
  their status), renaming and deleting audiences.
- `templates`: saving template versions (after a compile check), finding and listing them,
  and the unsubscribe links a preview renders with.
- `engines`: saving engines (URL encrypted), their limits and From address, today's usage,
  and the connection test that never shows a secret.
- `workflows`: creating, changing, deleting and setting up workflows with the checks of their
  parts, the Workflows page's catalog, and what a run would miss in unsubscribe.
- `runs`: queueing runs, pause, resume, cancel and retry (as `RUN_ACTIONS` allows them),
  executing a run in a background thread, and the read views (summaries, recent runs, Home's
  overview).
- `test_sends`: one message to one address through the ledger of a `test` run.

Beside them: `sending` (the executor), `preflight`, `compliance`, `results`, `run_summaries`
(the per-run CSV), `schedules`, `sources`, `keys`, `unsubscribe_mailbox` and `demo`.

The names below are re-exported so callers may write `services.queue_run(...)`. Modules of
this package import each other directly (`from outreach_core.services.runs import ...`),
never from here, so that any of them can be imported first.
"""

from __future__ import annotations

from outreach_core.services.audiences import audience_rows, import_audience, list_audiences
from outreach_core.services.engines import (
    engine_usage_today,
    list_engines,
    save_engine,
    save_engine_limits,
    save_engine_limits_form,
    save_engine_version,
    test_engine_connection,
)
from outreach_core.services.runs import (
    cancel_run,
    execute_in_background,
    overview,
    pause_run,
    queue_run,
    recent_runs,
    resume_in_background,
    retry_unsettled,
    run_summary,
)
from outreach_core.services.templates import (
    find_template,
    list_templates,
    save_template,
    template_versions,
    unsubscribe_links,
)
from outreach_core.services.test_sends import TEST_TRIGGER, send_test_message
from outreach_core.services.workflows import (
    create_workflow,
    delete_workflow,
    find_workflow,
    list_workflows,
    save_workflow_form,
    setup_workflow,
    update_workflow,
    workflow_catalog,
    workflow_unsubscribe_findings,
)

__all__ = [
    "TEST_TRIGGER",
    "audience_rows",
    "cancel_run",
    "create_workflow",
    "delete_workflow",
    "engine_usage_today",
    "execute_in_background",
    "find_template",
    "find_workflow",
    "import_audience",
    "list_audiences",
    "list_engines",
    "list_templates",
    "list_workflows",
    "overview",
    "pause_run",
    "queue_run",
    "recent_runs",
    "resume_in_background",
    "retry_unsettled",
    "run_summary",
    "save_engine",
    "save_engine_limits",
    "save_engine_limits_form",
    "save_engine_version",
    "save_template",
    "save_workflow_form",
    "send_test_message",
    "setup_workflow",
    "template_versions",
    "test_engine_connection",
    "unsubscribe_links",
    "update_workflow",
    "workflow_catalog",
    "workflow_unsubscribe_findings",
]
