"""Workflows: creating, changing, deleting and setting up the tie of an audience, a template
and engines; checking those parts; the catalog the Workflows page shows; and what a run of a
workflow would miss in unsubscribe."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audiences, audit, engines, runs, templates, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.forms import parse_workflow_form
from outreach_core.domain.models import SendOptions, Workflow, WorkflowCatalog, check_workflow_key
from outreach_core.domain.templating import TemplateSource
from outreach_core.domain.unsubscribe_checks import UnsubscribeFinding, unsubscribe_findings
from outreach_core.errors import FieldErrors, InputError, NotFound
from outreach_core.services.audiences import import_audience
from outreach_core.services.engines import save_engine, save_engine_version
from outreach_core.services.templates import save_template


def create_workflow(
    ws: Workspace,
    *,
    name: str,
    audience_id: int,
    template_id: int,
    engine_id: int | None = None,
    engine_ids: list[int] | None = None,
    options: SendOptions,
    actor: str,
    key: str | None = None,
) -> Workflow:
    """A workflow ties an audience, a template and one or more engines together.

    Raises FieldErrors (by field: name, key, audience_id, template_id, engine_ids) when a part
    does not exist, the key is malformed or taken, or the name is taken.
    """
    now = utcnow()
    ids = list(engine_ids or ([engine_id] if engine_id is not None else []))
    with ws.db.begin() as conn:
        _check_workflow_parts(
            conn,
            workflow_id=None,
            name=name,
            key=key,
            audience_id=audience_id,
            template_id=template_id,
            engine_ids=ids,
        )
        workflow_id = workflows.insert_workflow(
            conn,
            name=name,
            audience_id=audience_id,
            template_id=template_id,
            engine_ids=ids,
            options=options,
            now=now,
            key=key,
        )
        audit.record(
            conn, actor=actor, action="workflow.create", subject=f"workflow {workflow_id}", now=now
        )
        return workflows.get_workflow(conn, workflow_id)


def _check_workflow_parts(
    conn: Connection,
    *,
    workflow_id: int | None,
    name: str,
    key: str | None,
    audience_id: int,
    template_id: int,
    engine_ids: list[int],
) -> None:
    """Every problem with a workflow's name, key and parts, by field, as one FieldErrors."""
    problems: dict[str, str] = {}
    others = [w for w in workflows.list_workflows(conn) if w.id != workflow_id]
    if not name.strip():
        problems["name"] = "required: give the workflow a name"
    elif any(w.name == name for w in others):
        problems["name"] = f"a workflow named {name!r} exists already; choose another name"
    if key is not None:
        try:
            check_workflow_key(key)
        except InputError as exc:
            problems["key"] = str(exc)
        else:
            taken = next((w for w in others if w.key == key), None)
            if taken:
                problems["key"] = (
                    f"workflow key {key!r} is taken by workflow {taken.name!r}; choose another"
                )
    for field, check in (
        ("audience_id", lambda: audiences.get_audience(conn, audience_id)),
        ("template_id", lambda: templates.current_version(conn, template_id)),
    ):
        try:
            check()
        except NotFound as exc:
            problems[field] = str(exc)
    if not engine_ids:
        problems["engine_ids"] = "choose at least one engine"
    elif len(set(engine_ids)) != len(engine_ids):
        problems["engine_ids"] = "each engine may be chosen once"
    else:
        known = {e.id: e.name for e in engines.list_engines(conn)}
        missing = [str(i) for i in engine_ids if i not in known]
        if missing:
            names = ", ".join(f"{i} ({n})" for i, n in known.items()) or "none yet"
            problems["engine_ids"] = f"there is no engine {', '.join(missing)}; engines: {names}"
    if problems:
        raise FieldErrors(problems)


def update_workflow(
    ws: Workspace,
    workflow_id: int,
    *,
    name: str,
    key: str,
    audience_id: int,
    template_id: int,
    engine_ids: list[int],
    options: SendOptions,
    actor: str,
) -> Workflow:
    """Change a workflow's name, key, parts, engines (in order) and options.

    Runs already made keep what they were queued with. Raises FieldErrors as create does.
    """
    now = utcnow()
    with ws.db.begin() as conn:
        before = workflows.get_workflow(conn, workflow_id)
        _check_workflow_parts(
            conn,
            workflow_id=workflow_id,
            name=name,
            key=key,
            audience_id=audience_id,
            template_id=template_id,
            engine_ids=engine_ids,
        )
        workflows.update_workflow(
            conn,
            workflow_id,
            name=name,
            key=key,
            audience_id=audience_id,
            template_id=template_id,
            engine_ids=engine_ids,
            options=options,
        )
        after = workflows.get_workflow(conn, workflow_id)
        changed = {
            field: {"from": old, "to": new}
            for field, old, new in (
                (f, getattr(before, f), getattr(after, f))
                for f in ("name", "key", "audience_id", "template_id", "engine_ids")
            )
            if old != new
        }
        if before.options != after.options:
            changed["options"] = {"to": after.options.model_dump(mode="json")}
        audit.record(
            conn,
            actor=actor,
            action="workflow.update",
            subject=f"workflow {workflow_id}",
            now=now,
            detail=changed,
        )
        return after


def save_workflow_form(
    ws: Workspace, values: dict[str, Any], *, workflow_id: int | None, actor: str
) -> Workflow:
    """Create (workflow_id None) or update a workflow from the Workflows form's values.

    Every problem is raised at once as FieldErrors keyed by the form's field names; nothing
    is saved then. A blank key is made from the name on create and kept on update.
    """
    base = None
    if workflow_id is not None:
        with ws.db.connect() as conn:
            current = workflows.get_workflow(conn, workflow_id)
        base = current.options
    draft, options = parse_workflow_form(values, base=base)
    if workflow_id is None:
        return create_workflow(
            ws,
            name=draft.name,
            key=draft.key,
            audience_id=draft.audience_id,
            template_id=draft.template_id,
            engine_ids=draft.engine_ids,
            options=options,
            actor=actor,
        )
    return update_workflow(
        ws,
        workflow_id,
        name=draft.name,
        key=draft.key or current.key,
        audience_id=draft.audience_id,
        template_id=draft.template_id,
        engine_ids=draft.engine_ids,
        options=options,
        actor=actor,
    )


def delete_workflow(ws: Workspace, workflow_id: int, *, actor: str) -> None:
    """Remove a workflow that has never run (its schedules go with it).

    One with runs is kept, so their ledger keeps naming what was sent: InputError says so.
    """
    now = utcnow()
    with ws.db.begin() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        made = runs.count_runs_of_workflow(conn, workflow_id)
        if made:
            raise InputError(
                f"workflow {workflow.name!r} has {made} run(s) and is kept so their ledger stays "
                "readable; rename it or change its parts instead"
            )
        workflows.delete_workflow(conn, workflow_id)
        audit.record(
            conn,
            actor=actor,
            action="workflow.delete",
            subject=f"workflow {workflow_id}",
            now=now,
            detail={"name": workflow.name, "key": workflow.key},
        )


def workflow_catalog(ws: Workspace) -> WorkflowCatalog:
    """Workflows with every audience, template and engine they may use, and their last runs."""
    with ws.db.connect() as conn:
        return WorkflowCatalog(
            workflows=workflows.list_workflows(conn),
            audiences=audiences.list_audiences(conn),
            templates=templates.list_templates(conn),
            engines=engines.list_engines(conn),
            last_runs=runs.latest_run_per_workflow(conn),
        )


def setup_workflow(
    ws: Workspace,
    *,
    name: str,
    parsed: ParsedFile,
    template: TemplateSource,
    engine_url: str,
    from_email: str,
    from_name: str,
    options: SendOptions,
    actor: str,
    audience_name: str | None = None,
    template_name: str | None = None,
    engine_name: str | None = None,
    engine_versions: bool = False,
) -> Workflow:
    """Import an audience, save a template and an engine, and tie them into a workflow.

    Names default to the workflow's (`<name> audience`, …). The template and engine steps are
    idempotent (same content, same name), so a repeated set-up reuses them. With
    `engine_versions`, an engine of that name holding another URL or From is left as it is
    and a new version of it is saved (`save_engine_version`): runs queued with the old one
    resume with its secret.
    """
    audience = import_audience(ws, parsed, name=audience_name or f"{name} audience", actor=actor)
    saved = save_template(ws, template_name or f"{name} template", template, actor=actor)
    engine = (save_engine_version if engine_versions else save_engine)(
        ws,
        name=engine_name or f"{name} engine",
        url=engine_url,
        from_email=from_email,
        from_name=from_name,
        actor=actor,
    )
    return create_workflow(
        ws,
        name=name,
        audience_id=audience.id,
        template_id=saved.id,
        engine_id=engine.id,
        options=options,
        actor=actor,
    )


def find_workflow(ws: Workspace, name_or_id: str) -> Workflow:
    """A workflow by exact name, else by id; NotFound lists what exists."""
    every = list_workflows(ws)
    for workflow in every:
        if workflow.name == name_or_id or (name_or_id.isdigit() and workflow.id == int(name_or_id)):
            return workflow
    names = ", ".join(repr(w.name) for w in every) or "none yet"
    raise NotFound(f"no workflow {name_or_id!r}; workflows: {names}")


def list_workflows(ws: Workspace) -> list[Workflow]:
    """All workflows, by name."""
    with ws.db.connect() as conn:
        return workflows.list_workflows(conn)


def workflow_unsubscribe_findings(ws: Workspace, workflow_id: int) -> list[UnsubscribeFinding]:
    """What a run of the workflow would miss in unsubscribe (its options, its template's
    current version, whether this process's settings name an unsubscribe mailbox)."""
    with ws.db.connect() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        version = templates.current_version(conn, workflow.template_id)
    return unsubscribe_findings(
        workflow.options,
        TemplateSource(version.subject, version.html, version.text),
        mailbox_configured=ws.settings.unsubscribe_imap_url is not None,
    )
