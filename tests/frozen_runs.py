"""A run queued or frozen for a test: a new workflow over a list of addresses, sending to an outbox."""

from __future__ import annotations

from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import workers
from outreach_core.services.sending.freeze import freeze_audience


def queued_outbox_run(ws: Workspace, tmp_path: Path, *, name: str, emails: list[str]) -> int:
    """Queue a run of a new workflow `name` over `emails` (an outbox engine, no rate limit,
    no MX check); its id."""
    workflow = services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": e} for e in emails]),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def frozen_outbox_run(
    ws: Workspace, tmp_path: Path, *, name: str, emails: list[str], worker_id: str
) -> int:
    """A `queued_outbox_run` frozen as `worker_id`, which then holds it; its id."""
    run_id = queued_outbox_run(ws, tmp_path, name=name, emails=emails)
    assert freeze_audience(ws, workers.acquire_run(ws, run_id, worker_id=worker_id))
    return run_id
