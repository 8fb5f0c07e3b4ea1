"""The demo workspace loaded by `make run` the first time: fictional contacts only."""

from __future__ import annotations

from pathlib import Path

from outreach_core import services
from outreach_core.audience import read_contacts_file
from outreach_core.models import SendOptions, Workflow
from outreach_core.store import audiences
from outreach_core.templating import load_template_dir
from outreach_core.workspace import Workspace

DEMO_DIR = Path(__file__).parent
DEMO_AUDIENCE = "Demo contacts"
DEMO_TEMPLATE = "Spring workshop invitation"
DEMO_ENGINE = "Local outbox"
DEMO_WORKFLOW = "Demo: spring workshop"
ACTOR = "demo"


def load_demo(ws: Workspace) -> Workflow | None:
    """Create the demo audience, template, outbox engine and workflow; None if already there.

    Each step looks for what an earlier, interrupted load left, so a second call completes it.
    """
    if any(w.name == DEMO_WORKFLOW for w in services.list_workflows(ws)):
        return None
    with ws.db.connect() as conn:
        audience = audiences.find_audience(conn, DEMO_AUDIENCE)
    if audience is None:
        audience = services.import_audience(
            ws, read_contacts_file(DEMO_DIR / "contacts.csv"), name=DEMO_AUDIENCE, actor=ACTOR
        )
    template = services.save_template(
        ws, DEMO_TEMPLATE, load_template_dir(DEMO_DIR / "template"), actor=ACTOR
    )
    outbox = (ws.settings.data_dir / "outbox").resolve()
    engine = services.save_engine(
        ws,
        name=DEMO_ENGINE,
        url=f"outbox://{outbox}",
        from_email="workshops@example.com",
        from_name="Outreach Demo",
        actor=ACTOR,
    )
    return services.create_workflow(
        ws,
        name=DEMO_WORKFLOW,
        audience_id=audience.id,
        template_id=template.id,
        engine_id=engine.id,
        options=SendOptions(rate=20, burst=20),
        actor=ACTOR,
    )
