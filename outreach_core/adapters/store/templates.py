"""Templates and their immutable versions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import template_versions, templates
from outreach_core.domain.models import Template
from outreach_core.errors import NotFound

_CURRENT = sa.select(
    templates.c.id,
    templates.c.name,
    template_versions.c.id.label("version_id"),
    template_versions.c.version,
    template_versions.c.subject,
    template_versions.c.html,
    template_versions.c.text,
).join(template_versions, template_versions.c.template_id == templates.c.id)


def save_template(
    conn: Connection,
    *,
    name: str,
    subject: str,
    html: str | None,
    text: str | None,
    now: datetime,
) -> Template:
    """Save a new version of the named template (created on first save)."""
    template_id = conn.execute(
        sa.select(templates.c.id).where(templates.c.name == name)
    ).scalar_one_or_none()
    if template_id is None:
        template_id = conn.execute(
            templates.insert().values(name=name, created_at=now)
        ).inserted_primary_key[0]
    latest = conn.execute(
        sa.select(sa.func.max(template_versions.c.version)).where(
            template_versions.c.template_id == template_id
        )
    ).scalar_one()
    version_id = conn.execute(
        template_versions.insert().values(
            template_id=template_id,
            version=(latest or 0) + 1,
            subject=subject,
            html=html,
            text=text,
            created_at=now,
        )
    ).inserted_primary_key[0]
    return get_version(conn, int(version_id))


def get_version(conn: Connection, version_id: int) -> Template:
    """A template as it was at one version."""
    row = conn.execute(_CURRENT.where(template_versions.c.id == version_id)).first()
    if row is None:
        raise NotFound(f"there is no template version {version_id}")
    return Template.model_validate(dict(row._mapping))


def current_version(conn: Connection, template_id: int) -> Template:
    """The newest version of a template."""
    row = conn.execute(
        _CURRENT.where(templates.c.id == template_id)
        .order_by(template_versions.c.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"there is no template {template_id}")
    return Template.model_validate(dict(row._mapping))


def list_templates(conn: Connection) -> list[Template]:
    """The newest version of every template, by name."""
    latest = (
        sa.select(sa.func.max(template_versions.c.id))
        .group_by(template_versions.c.template_id)
        .scalar_subquery()
    )
    rows = conn.execute(
        _CURRENT.where(template_versions.c.id.in_(latest)).order_by(templates.c.name)
    )
    return [Template.model_validate(dict(row._mapping)) for row in rows]


def count_templates(conn: Connection) -> int:
    """How many templates exist."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(templates)).scalar_one())


def list_versions(conn: Connection, template_id: int) -> list[Template]:
    """Every version of a template, newest first."""
    rows = conn.execute(
        _CURRENT.where(templates.c.id == template_id).order_by(template_versions.c.version.desc())
    )
    return [Template.model_validate(dict(row._mapping)) for row in rows]
