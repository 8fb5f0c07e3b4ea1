"""Workflows and engine limits through the services, on SQLite and PostgreSQL: create, edit,
delete only without runs, clear errors by field, limits saved without the engine's secret."""

from __future__ import annotations

import pytest

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import audit, engines
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import EngineLimits, SendOptions, Workflow
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import FieldErrors, InputError

SECRET = "pw-Secret-123"


def seed(ws: Workspace) -> Workflow:
    """A workflow over one audience, one template and an SMTP engine with a password."""
    workflow = services.setup_workflow(
        ws,
        name="Spring",
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": "a@example.org"}]),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=f"smtp://user:{SECRET}@127.0.0.1:2525?tls=none",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(),
        actor="test",
    )
    services.save_engine(
        ws, name="Second", url="outbox:///tmp/out", from_email="b@example.com", from_name="",
        actor="test",
    )  # fmt: skip
    return workflow


def engine_ids(ws: Workspace) -> dict[str, int]:
    return {e.name: e.id for e in services.list_engines(ws)}


def test_update_changes_key_engines_and_options_and_audits(workspace: Workspace) -> None:
    """Verify an edit keeps the id, stores engines in the chosen order, and is audited."""
    workflow = seed(workspace)
    ids = engine_ids(workspace)
    order = [ids["Second"], workflow.engine_id]

    updated = services.update_workflow(
        workspace,
        workflow.id,
        name="Spring 2",
        key="spring-two",
        audience_id=workflow.audience_id,
        template_id=workflow.template_id,
        engine_ids=order,
        options=SendOptions(dedupe_window_hours=6, report_recipients=["boss@example.com"]),
        actor="editor",
    )

    assert (updated.id, updated.name, updated.key) == (workflow.id, "Spring 2", "spring-two")
    assert updated.engine_ids == order and updated.engine_id == ids["Second"]
    assert updated.options.dedupe_window_hours == 6
    with workspace.db.connect() as conn:
        entry = audit.latest(conn, limit=1)[0]
    assert (entry["action"], entry["actor"]) == ("workflow.update", "editor")
    assert entry["detail"]["key"] == {"from": workflow.key, "to": "spring-two"}


def test_bad_key_taken_key_and_unknown_engine_are_named_by_field(workspace: Workspace) -> None:
    """Verify every problem is reported at once, by field, and nothing is saved."""
    workflow = seed(workspace)
    other = services.create_workflow(
        workspace,
        name="Other",
        audience_id=workflow.audience_id,
        template_id=workflow.template_id,
        engine_ids=[workflow.engine_id],
        options=SendOptions(),
        actor="test",
        key="other",
    )
    with pytest.raises(FieldErrors) as caught:
        services.update_workflow(
            workspace,
            workflow.id,
            name="Other",
            key="other",
            audience_id=workflow.audience_id,
            template_id=999,
            engine_ids=[workflow.engine_id, 999],
            options=SendOptions(),
            actor="test",
        )
    errors = caught.value.errors
    assert "exists already" in errors["name"]
    assert "taken by workflow 'Other'" in errors["key"]
    assert "there is no template 999" in errors["template_id"]
    assert "there is no engine 999" in errors["engine_ids"]
    with pytest.raises(FieldErrors, match="lowercase letters"):
        services.update_workflow(
            workspace, workflow.id, name="x", key="Bad Key!", audience_id=workflow.audience_id,
            template_id=workflow.template_id, engine_ids=[workflow.engine_id],
            options=SendOptions(), actor="test",
        )  # fmt: skip
    assert {w.key for w in services.list_workflows(workspace)} == {workflow.key, other.key}
    assert services.find_workflow(workspace, str(workflow.id)).name == "Spring"


def test_delete_only_a_workflow_without_runs(workspace: Workspace) -> None:
    """Verify a workflow that ran is kept with a clear error, one that never ran is removed."""
    workflow = seed(workspace)
    services.queue_run(workspace, workflow.id, trigger="test", actor="test")
    with pytest.raises(InputError, match="has 1 run"):
        services.delete_workflow(workspace, workflow.id, actor="test")
    spare = services.create_workflow(
        workspace, name="Spare", audience_id=workflow.audience_id,
        template_id=workflow.template_id, engine_ids=[workflow.engine_id],
        options=SendOptions(), actor="test",
    )  # fmt: skip
    services.delete_workflow(workspace, spare.id, actor="test")
    assert [w.name for w in services.list_workflows(workspace)] == ["Spring"]


def test_engine_limits_and_sender_change_without_the_secret(workspace: Workspace) -> None:
    """Verify limits and From are saved, the encrypted URL is untouched, re-saving the engine's
    URL keeps its limits, and the audit entry holds no secret."""
    workflow = seed(workspace)
    with workspace.db.connect() as conn:
        stored_before = engines.get_encrypted_url(conn, workflow.engine_id)
    limits = EngineLimits(rate_per_second=2.5, daily_quota=250, per_domain_per_minute=10)

    saved = services.save_engine_limits(
        workspace, workflow.engine_id, limits, actor="ops", from_email="news@example.com",
        from_name="News",
    )  # fmt: skip

    assert saved.limits == limits
    assert (saved.from_email, saved.from_name) == ("news@example.com", "News")
    with workspace.db.connect() as conn:
        assert engines.get_encrypted_url(conn, workflow.engine_id) == stored_before
        entry = audit.latest(conn, limit=1)[0]
    assert SECRET in crypto.decrypt(workspace.fernet, stored_before)
    assert entry["action"] == "engine.limits"
    assert entry["detail"]["limits"] == {
        "rate_per_second": 2.5,
        "daily_quota": 250,
        "per_domain_per_minute": 10,
    }
    assert SECRET not in str(entry)
    with pytest.raises(InputError, match="from address 'not-an-address'"):
        services.save_engine_limits(
            workspace, workflow.engine_id, EngineLimits(), actor="ops", from_email="not-an-address"
        )
    by_name = {e.name: e for e in services.list_engines(workspace)}
    assert by_name["Spring engine"].limits == limits  # nothing saved on error

    services.save_engine(
        workspace, name="Spring engine", url="smtp://user:new@127.0.0.1:2526?tls=none",
        from_email="news@example.com", from_name="News", actor="ops",
    )  # fmt: skip
    assert {e.name: e.limits for e in services.list_engines(workspace)}["Spring engine"] == limits
