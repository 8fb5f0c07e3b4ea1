"""Templates: saving versions after a compile check, finding and listing them, and the
unsubscribe links a preview renders with."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from outreach_core.adapters.store import audit, templates
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import SendOptions, Template
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.errors import InputError, NotFound
from outreach_core.services import sending


def save_template(ws: Workspace, name: str, source: TemplateSource, *, actor: str) -> Template:
    """Save a new version of a template after checking that it compiles.

    Saving the same content as the newest version creates no new version.
    """
    CompiledTemplate(source)  # raises TemplateError with part and line
    now = utcnow()
    with ws.db.begin() as conn:
        for existing in templates.list_templates(conn):
            if existing.name == name and (existing.subject, existing.html, existing.text) == (
                source.subject,
                source.html,
                source.text,
            ):
                return existing
        saved = templates.save_template(
            conn, name=name, subject=source.subject, html=source.html, text=source.text, now=now
        )
        audit.record(
            conn,
            actor=actor,
            action="template.save",
            subject=f"template {saved.id}",
            now=now,
            detail={"name": name, "version": saved.version},
        )
        return saved


def list_templates(ws: Workspace) -> list[Template]:
    """The newest version of every template, by name."""
    with ws.db.connect() as conn:
        return templates.list_templates(conn)


def find_template(ws: Workspace, name: str) -> Template:
    """The newest version of the template with this name; NotFound lists the names."""
    found = list_templates(ws)
    for template in found:
        if template.name == name:
            return template
    known = ", ".join(repr(t.name) for t in found) or "none yet"
    raise NotFound(f"there is no template named {name!r}; templates: {known}")


def template_versions(ws: Workspace, template_id: int) -> list[Template]:
    """Every saved version of a template, newest first."""
    with ws.db.connect() as conn:
        return templates.list_versions(conn, template_id)


def unsubscribe_links(ws: Workspace, base_url: str) -> Callable[[str], str]:
    """The `unsubscribe_url` maker a run with this base URL would use (for previews)."""
    try:
        options = SendOptions(unsubscribe_base_url=base_url)
    except ValidationError as exc:
        raise InputError(exc.errors()[0]["msg"]) from None
    links = sending.unsubscribe_links(ws, options)
    assert links is not None
    return links
