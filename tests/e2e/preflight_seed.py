"""A workspace for the pre-flight tests: workflows whose pre-flight holds every kind of row.

- "Mixed" (DNS skipped): 2 valid, 1 invalid, 1 duplicate, 1 suppressed, 1 render error (an
  empty first_name), 1 sent to by an earlier run of the workflow (dedupe window 24 h).
- "Weekly" (DNS skipped): its 15 contacts were all sent once: a second send skips them all.
- "Home queue" (DNS skipped): 15 contacts, never sent.
- the audience "Contacts" (15 rows, email + first_name), the templates "Hello" (first_name)
  and "City note" (city, which no audience has), the engines "Outbox" and "Outbox B".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.domain.models import SendOptions, SuppressionReason
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import compliance
from tests.e2e.dashboard import open_test_workspace, send_run

COLUMNS = ["email", "first_name"]
FIRST_NAMES = ["Ann", "Bob", "Cleo", "Dev", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai"]
MIXED = [
    ("ann@example.com", "Ann"),
    ("bob@example.com", "Bob"),
    ("not-an-address", "Nobody"),
    ("ANN@example.com", "Ann again"),
    ("sup@example.com", "Sup"),
    ("cat@example.com", ""),
    ("dan@example.com", "Dan"),
]
#: what the pre-flight of "Mixed" counts
MIXED_COUNTS = {
    "valid": 2,
    "invalid_syntax": 1,
    "duplicate": 1,
    "suppressed": 1,
    "render_error": 1,
    "sent_recently": 1,
}


def contacts(prefix: str, n: int = 15) -> ParsedFile:
    rows = [
        {"email": f"{prefix}{i}@example.com", "first_name": FIRST_NAMES[i % len(FIRST_NAMES)]}
        for i in range(1, n + 1)
    ]
    return ParsedFile(f"{prefix}.csv", COLUMNS, "email", rows)


@dataclass(frozen=True)
class Seeded:
    mixed: int
    weekly: int
    home: int


def seed(data: Path) -> Seeded:
    """Fill the data folder (see the module's docstring); returns the workflows' ids."""
    ws = open_test_workspace(data)
    try:
        outbox = services.save_engine(
            ws, name="Outbox", url=f"outbox://{(data / 'outbox').resolve()}",
            from_email="team@example.com", from_name="Team", actor="test",
        )  # fmt: skip
        services.save_engine(
            ws, name="Outbox B", url=f"outbox://{(data / 'outbox-b').resolve()}",
            from_email="team@example.com", from_name="Team", actor="test",
        )  # fmt: skip
        hello = services.save_template(
            ws, "Hello", TemplateSource("Hello {{ first_name }}", None, "Hi {{ first_name }}"),
            actor="test",
        )  # fmt: skip
        services.save_template(
            ws, "City note", TemplateSource("News for {{ city }}", None, "Hi {{ first_name }}"),
            actor="test",
        )  # fmt: skip
        services.import_audience(ws, contacts("contact"), name="Contacts", actor="test")
        options = SendOptions(skip_mx=True, rate=0)

        def workflow(name: str, parsed: ParsedFile, audience: str) -> int:
            made = services.import_audience(ws, parsed, name=audience, actor="test")
            return services.create_workflow(
                ws, name=name, audience_id=made.id, template_id=hello.id,
                engine_id=outbox.id, options=options, actor="test",
            ).id  # fmt: skip

        # "Mixed": its first run sent to dan only, then it was given the mixed audience
        mixed = workflow("Mixed", ParsedFile("dan.csv", COLUMNS, "email",
                         [{"email": "dan@example.com", "first_name": "Dan"}]), "Dan only")  # fmt: skip
        send_run(ws, services.find_workflow(ws, "Mixed"))
        rows = [{"email": e, "first_name": n} for e, n in MIXED]
        audience = services.import_audience(
            ws, ParsedFile("mixed.csv", COLUMNS, "email", rows), name="Mixed contacts", actor="test"
        )
        current = services.find_workflow(ws, "Mixed")
        services.update_workflow(
            ws, mixed, name=current.name, key=current.key, audience_id=audience.id,
            template_id=current.template_id, engine_ids=current.engine_ids,
            options=current.options, actor="test",
        )  # fmt: skip
        compliance.suppress(ws, "sup@example.com", reason=SuppressionReason.MANUAL, actor="test")

        weekly = workflow("Weekly", contacts("weekly"), "Weekly contacts")
        send_run(ws, services.find_workflow(ws, "Weekly"))
        home = workflow("Home queue", contacts("home"), "Home contacts")
        return Seeded(mixed=mixed, weekly=weekly, home=home)
    finally:
        ws.close()
