"""Templates in the store: versions, a run's version, escapes at save and at run time, abort."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import templates
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import unsubscribe_links
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import RenderErrorPolicy, SendOptions, Workflow
from outreach_core.domain.states import RunStatus
from outreach_core.domain.template_tools import diff_versions
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import TemplateError
from outreach_core.services import compliance
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

ACTOR = "test"
ESCAPE = "{{ cycler.__init__.__globals__.os.environ }}"


def seed(ws: Workspace, outbox: Path, rows: list[dict[str, str]], options: SendOptions) -> Workflow:
    return services.setup_workflow(
        ws,
        name="tv",
        parsed=ParsedFile("c.csv", ["email", "company"], "email", rows),
        template=TemplateSource("For {{ company }}", None, "Hello {{ company }}\n"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=options,
        actor=ACTOR,
    )


def test_every_save_makes_a_new_version_and_a_run_records_the_version_it_used(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify saves make versions 1, 2 (identical content makes none), the run queued after
    the second save records version 2, and the diff between them shows the change."""
    workflow = seed(
        workspace, tmp_path / "out", [{"email": "a@example.com", "company": "A"}], SendOptions()
    )
    first = services.template_versions(workspace, workflow.template_id)[0]
    second = services.save_template(
        workspace, "tv template", TemplateSource("Hi {{ company }}", None, "Hi\n"), actor=ACTOR
    )
    again = services.save_template(
        workspace, "tv template", TemplateSource("Hi {{ company }}", None, "Hi\n"), actor=ACTOR
    )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    versions = services.template_versions(workspace, workflow.template_id)
    assert [v.version for v in versions] == [2, 1]
    assert again.version_id == second.version_id
    assert services.run_summary(workspace, run_id).run.template_version_id == second.version_id
    diff = diff_versions(first, second)
    assert "-For {{ company }}" in diff and "+Hi {{ company }}" in diff
    assert "-Hello {{ company }}" in diff and "+Hi" in diff


def test_escape_payload_is_refused_at_save_and_no_version_is_stored(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify services.save_template refuses an escape payload and stores nothing."""
    workflow = seed(
        workspace, tmp_path / "out", [{"email": "a@example.com", "company": "A"}], SendOptions()
    )
    with pytest.raises(TemplateError, match="text: line 1, column 20: not allowed in a template"):
        services.save_template(
            workspace, "tv template", TemplateSource("Hi", None, ESCAPE), actor=ACTOR
        )
    assert len(services.template_versions(workspace, workflow.template_id)) == 1


def test_escape_payload_stored_behind_the_services_back_fails_the_run_and_sends_nothing(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a version written straight into the store (as an old database might hold) is
    refused when the run compiles it: the run FAILS naming part, line and column."""
    outbox = tmp_path / "out"
    workflow = seed(
        workspace, outbox, [{"email": "a@example.com", "company": "A"}], SendOptions(rate=0)
    )
    with workspace.db.begin() as conn:
        templates.save_template(
            conn, name="tv template", subject="Hi", html=None, text=ESCAPE, now=utcnow()
        )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.FAILED
    assert run.status_reason == (
        "template tv template v2: text: line 1, column 20: not allowed in a template: "
        "attribute '__globals__'"
    )
    assert not outbox.exists()


@pytest.mark.parametrize("policy", list(RenderErrorPolicy))
def test_render_error_policy_of_the_workflow_decides_skip_or_abort(
    workspace: Workspace, tmp_path: Path, policy: RenderErrorPolicy
) -> None:
    """Verify a workflow with skip sends the other rows and skips row 2; with abort the run
    FAILS naming row 2 and `company` and no delivery row is written."""
    outbox = tmp_path / "out"
    rows = [
        {"email": "a@example.com", "company": "A"},
        {"email": "b@example.com", "company": ""},
        {"email": "c@example.com", "company": "C"},
    ]
    workflow = seed(workspace, outbox, rows, SendOptions(rate=0, on_render_error=policy))
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    counts = services.run_summary(workspace, run_id).counts

    if policy is RenderErrorPolicy.SKIP:
        assert run.status is RunStatus.COMPLETED
        assert (counts.sent, counts.skipped) == (2, 1)
        assert len(list(message_files(outbox))) == 2
    else:
        assert run.status is RunStatus.FAILED
        assert run.status_reason is not None
        assert "row 2: render_error: subject: 'company' is undefined" in run.status_reason
        assert counts.total == 0
        assert not outbox.exists()


def test_run_with_an_unsubscribe_base_url_sends_each_recipient_a_verifiable_link(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify `{{ unsubscribe_url }}` renders the base URL plus a token that the workspace's
    derived key verifies for that recipient and no other."""
    outbox = tmp_path / "out"
    rows = [{"email": "a@example.com", "company": "A"}, {"email": "b@example.com", "company": "B"}]
    workflow = services.setup_workflow(
        workspace,
        name="unsub",
        parsed=ParsedFile("c.csv", ["email", "company"], "email", rows),
        template=TemplateSource("Hi", None, "Leave: {{ unsubscribe_url }}\n"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, unsubscribe_base_url="https://example.com/unsubscribe"),
        actor=ACTOR,
    )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    key = compliance.unsubscribe_key(workspace)
    links = {}
    for path in message_files(outbox):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(("plain",)).get_content()
        links[str(message["To"])] = body.split("Leave: ", 1)[1].strip()
    assert sorted(links) == ["a@example.com", "b@example.com"]
    for email, link in links.items():
        query = parse_qs(urlsplit(link).query)
        assert link.startswith("https://example.com/unsubscribe?")
        assert query["email"] == [email]
        assert unsubscribe_links.verify(key, email, query["token"][0])
    assert links["a@example.com"] != links["b@example.com"]
