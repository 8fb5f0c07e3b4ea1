"""Use cases called by the pages, the CLI and the daemon: one transaction each."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders import open_sender, parse_engine_url
from outreach_core.adapters.store import (
    audiences,
    audit,
    deliveries,
    engines,
    runs,
    templates,
    workflows,
)
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.engine_rotation import utc_day_start
from outreach_core.domain.forms import parse_engine_limits, parse_workflow_form
from outreach_core.domain.models import (
    Audience,
    Engine,
    EngineLimits,
    Overview,
    Run,
    RunSummary,
    SendOptions,
    Template,
    Workflow,
    WorkflowCatalog,
    check_workflow_key,
)
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_checks import UnsubscribeFinding, unsubscribe_findings
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import (
    FieldErrors,
    IllegalTransition,
    InputError,
    NotFound,
    OutreachError,
    RunBusy,
    SendError,
)
from outreach_core.services import run_summaries, sending

#: the trigger of a run made by a test send; the ledger shows it
TEST_TRIGGER = "test"

log = logging.getLogger("outreach.services")


def import_audience(ws: Workspace, parsed: ParsedFile, *, name: str, actor: str) -> Audience:
    """Store a parsed contacts file as an audience."""
    now = utcnow()
    with ws.db.begin() as conn:
        audience_id = audiences.insert_audience(
            conn,
            name=name,
            source=parsed.source,
            email_column=parsed.email_column,
            columns=parsed.columns,
            headers=parsed.headers,
            rows=parsed.rows,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            action="audience.import",
            subject=f"audience {audience_id}",
            now=now,
            detail={"name": name, "rows": len(parsed.rows)},
        )
        return audiences.get_audience(conn, audience_id)


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


def save_engine(
    ws: Workspace, *, name: str, url: str, from_email: str, from_name: str, actor: str
) -> Engine:
    """Create or update an engine; its URL is stored encrypted, a masked copy for display."""
    parsed = parse_engine_url(url)
    checked = check_syntax(from_email)
    if not checked.ok:
        raise InputError(f"from address {from_email!r}: {checked.error}")
    now = utcnow()
    with ws.db.begin() as conn:
        # re-saving an engine (a new URL or secret) keeps the limits set on it
        kept = next((e.limits for e in engines.list_engines(conn) if e.name == name), None)
        engine_id = engines.upsert_engine(
            conn,
            limits=kept,
            name=name,
            kind=parsed.kind,
            url_encrypted=crypto.encrypt(ws.fernet, url),
            display_url=parsed.display,
            from_email=checked.address or from_email,
            from_name=from_name,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            action="engine.save",
            subject=f"engine {engine_id}",
            now=now,
            detail={"name": name, "url": parsed.display},
        )
        return engines.get_engine(conn, engine_id)


def save_engine_limits(
    ws: Workspace,
    engine_id: int,
    limits: EngineLimits,
    *,
    actor: str,
    from_email: str | None = None,
    from_name: str | None = None,
) -> Engine:
    """Change an engine's limits (and, when given, its From address and name) without its URL:
    the stored secret is neither needed nor touched."""
    now = utcnow()
    with ws.db.begin() as conn:
        engine = engines.get_engine(conn, engine_id)
        detail: dict[str, Any] = {"limits": limits.model_dump(mode="json", exclude_none=True)}
        engines.set_limits(conn, engine_id, limits)
        if from_email is not None or from_name is not None:
            address = engine.from_email
            if from_email is not None and from_email.strip() != engine.from_email:
                checked = check_syntax(from_email)
                if not checked.ok:
                    raise InputError(f"from address {from_email!r}: {checked.error}")
                address = checked.address or from_email
            name = engine.from_name if from_name is None else from_name.strip()
            engines.set_sender(conn, engine_id, from_email=address, from_name=name)
            detail["from"] = f"{name} <{address}>" if name else address
        audit.record(
            conn,
            actor=actor,
            action="engine.limits",
            subject=f"engine {engine_id}",
            now=now,
            detail=detail,
        )
        return engines.get_engine(conn, engine_id)


def save_engine_limits_form(
    ws: Workspace, engine_id: int, values: dict[str, Any], *, actor: str
) -> Engine:
    """The Engines page's limits form: blank = no limit; FieldErrors by field, nothing saved."""
    limits = parse_engine_limits(values)
    try:
        return save_engine_limits(
            ws,
            engine_id,
            limits,
            actor=actor,
            from_email=values.get("from_email"),
            from_name=values.get("from_name"),
        )
    except InputError as exc:
        if str(exc).startswith("from address"):
            raise FieldErrors({"from_email": str(exc)}) from None
        raise


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
) -> Workflow:
    """Import an audience, save a template and an engine, and tie them into a workflow.

    Names default to the workflow's (`<name> audience`, …). The template and engine steps are
    idempotent (same content, same name), so a repeated set-up reuses them.
    """
    audience = import_audience(ws, parsed, name=audience_name or f"{name} audience", actor=actor)
    saved = save_template(ws, template_name or f"{name} template", template, actor=actor)
    engine = save_engine(
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


def queue_run(
    ws: Workspace,
    workflow_id: int,
    *,
    trigger: str,
    actor: str,
    options: SendOptions | None = None,
) -> int:
    """Insert a QUEUED run with the template version and engine it will use; returns its id."""
    now = utcnow()
    with ws.db.begin() as conn:
        workflow = workflows.get_workflow(conn, workflow_id)
        run_id = runs.insert_workflow_run(conn, workflow, trigger=trigger, now=now, options=options)
        audit.record(
            conn,
            actor=actor,
            action="run.queue",
            subject=f"run {run_id}",
            now=now,
            detail={"workflow": workflow.name, "trigger": trigger},
        )
        return run_id


def run_summary(ws: Workspace, run_id: int) -> RunSummary:
    """A run with its delivery counts."""
    return run_summaries.run_summary(ws, run_id)


def recent_runs(ws: Workspace, *, limit: int = 20) -> list[RunSummary]:
    """The latest runs with their counts, newest first."""
    with ws.db.connect() as conn:
        return _recent_runs(conn, limit)


def _recent_runs(conn: Connection, limit: int) -> list[RunSummary]:
    latest = runs.list_runs(conn, limit=limit)
    names = workflows.workflow_names(conn, [r.workflow_id for r in latest])
    counts = deliveries.counts_for_runs(conn, [r.id for r in latest])
    return [
        RunSummary(run=r, workflow_name=names.get(r.workflow_id, "?"), counts=counts[r.id])
        for r in latest
    ]


def overview(ws: Workspace, *, recent: int = 10) -> Overview:
    """Counts of everything and the latest runs, for Home."""
    with ws.db.connect() as conn:
        counts = {
            "audiences": audiences.count_audiences(conn),
            "templates": templates.count_templates(conn),
            "engines": engines.count_engines(conn),
            "workflows": workflows.count_workflows(conn),
            "runs": runs.count_runs(conn),
        }
        return Overview(**counts, recent_runs=_recent_runs(conn, recent))


def find_workflow(ws: Workspace, name_or_id: str) -> Workflow:
    """A workflow by exact name, else by id; NotFound lists what exists."""
    every = list_workflows(ws)
    for workflow in every:
        if workflow.name == name_or_id or (name_or_id.isdigit() and workflow.id == int(name_or_id)):
            return workflow
    names = ", ".join(repr(w.name) for w in every) or "none yet"
    raise NotFound(f"no workflow {name_or_id!r}; workflows: {names}")


def list_audiences(ws: Workspace) -> list[Audience]:
    """All audiences, by name."""
    with ws.db.connect() as conn:
        return audiences.list_audiences(conn)


def list_workflows(ws: Workspace) -> list[Workflow]:
    """All workflows, by name."""
    with ws.db.connect() as conn:
        return workflows.list_workflows(conn)


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


def audience_rows(ws: Workspace, audience_id: int) -> list[tuple[int, dict[str, Any]]]:
    """(row number, values) of every row of an audience, in file order."""
    with ws.db.connect() as conn:
        return list(audiences.iter_rows(conn, audience_id))


def engine_usage_today(ws: Workspace) -> dict[int, int]:
    """Messages each engine took since midnight UTC over every run (sent, unknown, in flight):
    what its daily quota is counted against."""
    with ws.db.connect() as conn:
        ids = [engine.id for engine in engines.list_engines(conn)]
        return deliveries.engine_usage(conn, ids, since=utc_day_start(utcnow()))


def list_engines(ws: Workspace) -> list[Engine]:
    """All engines, secrets masked."""
    with ws.db.connect() as conn:
        return engines.list_engines(conn)


def unsubscribe_links(ws: Workspace, base_url: str) -> Callable[[str], str]:
    """The `unsubscribe_url` maker a run with this base URL would use (for previews)."""
    try:
        options = SendOptions(unsubscribe_base_url=base_url)
    except ValidationError as exc:
        raise InputError(exc.errors()[0]["msg"]) from None
    links = sending.unsubscribe_links(ws, options)
    assert links is not None
    return links


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
    checked = check_syntax(to)
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


#: where a run can be paused from, and cancelled from
_PAUSABLE = (RunStatus.SENDING,)
_CANCELLABLE = (RunStatus.QUEUED, RunStatus.INITIALIZING, RunStatus.SENDING, RunStatus.PAUSED)


def _move_run(ws: Workspace, run_id: int, *, allowed: tuple[RunStatus, ...], target: RunStatus,
              actor: str, reason: str) -> Run:  # fmt: skip
    now = utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in allowed:
            raise IllegalTransition(
                f"{run} cannot be {target.lower()}; only runs that are "
                + " or ".join(allowed)
                + " can"
            )
        runs.set_run_status(
            conn, run_id, expected=run.status, target=target, now=now, reason=reason
        )
        audit.record(
            conn,
            actor=actor,
            action=f"run.{target.lower()}",
            subject=f"run {run_id}",
            now=now,
            detail={"from": str(run.status)},
        )
        return runs.get_run(conn, run_id)


def pause_run(ws: Workspace, run_id: int, *, actor: str) -> Run:
    """SENDING -> PAUSED. The executor finishes its current batch, records it and lets go;
    `resume` (CLI or page) continues with the pending rows."""
    return _move_run(
        ws, run_id, allowed=_PAUSABLE, target=RunStatus.PAUSED, actor=actor,
        reason=f"paused by {actor}",
    )  # fmt: skip


def cancel_run(ws: Workspace, run_id: int, *, actor: str) -> Run:
    """Any live run -> CANCELLED. The current batch is finished and recorded; pending rows
    stay pending and are never sent."""
    return _move_run(
        ws, run_id, allowed=_CANCELLABLE, target=RunStatus.CANCELLED, actor=actor,
        reason=f"cancelled by {actor}",
    )  # fmt: skip


#: runs whose deferred (and unknown) deliveries may be put back to pending
_RETRYABLE = (RunStatus.COMPLETED, RunStatus.PAUSED)


def retry_unsettled(ws: Workspace, run_id: int, *, include_unknown: bool, actor: str) -> int:
    """Put a run's `deferred` deliveries (and its `unknown` ones, only with `include_unknown`:
    they may have been delivered, so resending risks a duplicate) back to `pending`, and
    re-queue the run (COMPLETED or PAUSED -> QUEUED) so an executor sends them.

    Returns how many deliveries were put back; 0 changes nothing. Each row keeps its attempts
    (the executor adds the new ones) and its reason gains a "manual retry" note. A PAUSED run
    must have been let go by its executor; rows that one left mid-send become `unknown` first,
    as a resume would make them.
    """
    now = utcnow()
    statuses = [DeliveryStatus.DEFERRED] + ([DeliveryStatus.UNKNOWN] if include_unknown else [])
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        if run.status not in _RETRYABLE:
            raise IllegalTransition(
                f"{run} cannot be retried; only COMPLETED or PAUSED runs can (pause it first)"
            )
        if run.status is RunStatus.PAUSED:
            if sending.holder_is_alive(run, now=now):
                raise RunBusy(f"{run} is still held by {run.worker_id}; retry once it has let go")
            deliveries.mark_in_flight_unknown(conn, run_id, now=now)
        before = deliveries.counts(conn, run_id)
        kinds = " and ".join(str(s) for s in statuses)
        moved = deliveries.requeue(
            conn, run_id, statuses=statuses, note=f"manual retry by {actor}; before: ", now=now
        )
        if not moved:
            return 0
        runs.reopen_run(
            conn,
            run_id,
            expected=run.status,
            now=now,
            reason=f"retry of {moved} {kinds} deliveries asked by {actor}",
        )
        audit.record(
            conn,
            actor=actor,
            action="run.retry",
            subject=f"run {run_id}",
            now=now,
            detail={
                "from": str(run.status),
                "deferred": before.deferred,
                "unknown": before.unknown if include_unknown else 0,
                "include_unknown": include_unknown,
            },
        )
        return moved


def _secrets_of(url: str) -> list[str]:
    """The credential parts of an engine URL (raw and decoded), to scrub from messages."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    if parts.scheme not in ("smtp", "smtps"):
        found.append(parts.username or "")  # the API key or access key of the HTTP kinds
    found += [unquote(value) for value in found]
    return sorted({value for value in found if len(value) >= 3}, key=len, reverse=True)


def test_engine_connection(ws: Workspace, engine_id: int) -> str:
    """Open the engine's sender and run its `check()`: a sentence on success.

    Raises SendError (or InputError) saying what is wrong. Neither the sentence nor the
    error ever contains the engine's password or key.
    """
    with ws.db.connect() as conn:
        engine = engines.get_engine(conn, engine_id)
        encrypted = engines.get_encrypted_url(conn, engine.id)
    url = crypto.decrypt(ws.fernet, encrypted)

    async def check() -> str:
        async with open_sender(url, concurrency=1) as sender:
            return await sender.check()

    def scrub(text: str) -> str:
        for secret in _secrets_of(url):
            text = text.replace(secret, "***")
        return text

    try:
        message = asyncio.run(check())
    except SendError as exc:
        raise SendError(scrub(str(exc)), kind=exc.kind) from None
    except OutreachError as exc:
        raise InputError(scrub(str(exc))) from None
    except OSError as exc:  # anything the sender did not translate
        raise InputError(scrub(f"engine {engine.name}: {type(exc).__name__}: {exc}")) from None
    return scrub(message)


def resume_in_background(ws: Workspace, run_id: int, *, actor: str) -> threading.Thread:
    """Record who resumed the run, then continue it in a thread of this process."""
    now = utcnow()
    with ws.db.begin() as conn:
        run = runs.get_run(conn, run_id)
        audit.record(
            conn,
            actor=actor,
            action="run.resume",
            subject=f"run {run_id}",
            now=now,
            detail={"status": str(run.status)},
        )
    return execute_in_background(ws, run_id)


def execute_in_background(ws: Workspace, run_id: int) -> threading.Thread:
    """Execute (or continue) a run in a daemon thread of this process; returns the thread.

    The thread has its own StopSignal and worker id. Claiming is atomic, so when the
    scheduler daemon (or another thread) got the run first this thread logs it and ends.
    """

    def work() -> None:
        try:
            sending.run_to_end(
                ws, run_id, worker_id=sending.new_worker_id(), stop=sending.StopSignal()
            )
        except OutreachError as exc:
            log.info("run %s: not executed here: %s", run_id, exc)
        except Exception:
            log.exception("run %s: executing in the background failed", run_id)

    thread = threading.Thread(target=work, name=f"outreach-run-{run_id}", daemon=True)
    thread.start()
    return thread
