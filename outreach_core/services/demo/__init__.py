"""The demo workspace loaded by `make run` the first time: fictional contacts only."""

from __future__ import annotations

from pathlib import Path

from outreach_core.adapters.contact_files import read_contacts_file
from outreach_core.adapters.store import audiences
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.templating import load_template_dir
from outreach_core.services.workflows import list_workflows, setup_workflow

DEMO_DIR = Path(__file__).parent
DEMO_AUDIENCE = "Demo contacts"
DEMO_TEMPLATE = "Spring workshop invitation"
DEMO_ENGINE = "Local outbox"
DEMO_WORKFLOW = "Demo: spring workshop"
ACTOR = "demo"


def load_demo(ws: Workspace) -> Workflow | None:
    """Create the demo audience, template, outbox engine and workflow; None if already there.

    The workflow is created last, so its presence means the demo is complete; a load that
    was interrupted earlier is completed by the next call (template and engine are reused).
    """
    if any(w.name == DEMO_WORKFLOW for w in list_workflows(ws)):
        return None
    audience_name = DEMO_AUDIENCE
    with ws.db.connect() as conn:
        if audiences.find_audience(conn, DEMO_AUDIENCE):  # left by an interrupted load
            audience_name = f"{DEMO_AUDIENCE} (reloaded)"
    outbox = (ws.settings.data_dir / "outbox").resolve()
    return setup_workflow(
        ws,
        name=DEMO_WORKFLOW,
        parsed=read_contacts_file(DEMO_DIR / "contacts.csv"),
        template=load_template_dir(DEMO_DIR / "template"),
        engine_url=f"outbox://{outbox}",
        from_email="workshops@example.com",
        from_name="Outreach Demo",
        # the demo's domains are fictional (example.com publishes a null MX): no MX check
        options=SendOptions(rate=20, burst=20, skip_mx=True),
        actor=ACTOR,
        audience_name=audience_name,
        template_name=DEMO_TEMPLATE,
        engine_name=DEMO_ENGINE,
    )
