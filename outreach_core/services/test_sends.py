"""Test sends: one message of a template to one address, now, through the same ledger as
any run (a one-row audience, a workflow and a run with the `test` trigger)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import engines, templates
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import RunSummary, SendOptions
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import InputError
from outreach_core.services import sending
from outreach_core.services.audiences import import_audience
from outreach_core.services.runs import queue_run, run_summary
from outreach_core.services.workflows import create_workflow

#: the trigger of a run made by a test send; the ledger shows it
TEST_TRIGGER = "test"


def send_test_message(
    ws: Workspace,
    *,
    template_id: int,
    engine_id: int,
    to: str,
    variables: dict[str, Any],
    email_column: str,
    actor: str,
) -> RunSummary:
    """Send the newest version of a template to one address with one row's values, now.

    It goes through the same ledger as any run: a one-row audience and workflow named
    `Test send …` and a run with trigger `test`, so the Runs page shows it as a test.
    """
    checked = check_syntax(to, test_environment=ws.settings.test_environment)
    if not checked.ok:
        raise InputError(f"test address {to!r}: {checked.error}")
    with ws.db.connect() as conn:
        template = templates.current_version(conn, template_id)
        engine = engines.get_engine(conn, engine_id)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    row = {**variables, email_column: to}
    audience = import_audience(
        ws,
        ParsedFile(source="test send", columns=list(row), email_column=email_column, rows=[row]),
        name=f"Test send to {to} ({stamp})",
        actor=actor,
    )
    workflow = create_workflow(
        ws,
        name=f"Test send: {template.name} v{template.version} to {to} via {engine.name} ({stamp})",
        audience_id=audience.id,
        template_id=template_id,
        engine_id=engine_id,
        options=SendOptions(rate=0, concurrency=1, skip_mx=True),
        actor=actor,
    )
    run_id = queue_run(ws, workflow.id, trigger=TEST_TRIGGER, actor=actor)
    sending.run_to_end(ws, run_id, worker_id=sending.new_worker_id(), stop=sending.StopSignal())
    return run_summary(ws, run_id)
