"""The Workflows page under AppTest, over the demo workspace: create a workflow with two
engines and options, edit a key, and bad input (key, report address, an engine gone meanwhile)
shown under its field with nothing saved."""

from __future__ import annotations

import re

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.store.tables import engines as engines_table
from outreach_core.domain.models import RenderErrorPolicy
from outreach_core.domain.states import DnsWaitPolicy
from tests.e2e.dashboard import HOME, Demo

PAGE = "pages/workflows.py"


def literal(value: str) -> str:
    """A box's text as the browser shows it: the backslash escapes of `ui.plain` removed."""
    return re.sub(r"\\(.)", r"\1", value)


def start() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def add_engine(demo: Demo, name: str) -> int:
    engine = services.save_engine(
        demo.ws,
        name=name,
        url=f"outbox:///{demo.ws.settings.data_dir}/{name}",
        from_email="team@example.com",
        from_name="Team",
        actor="test",
    )
    return engine.id


def submit(at: AppTest) -> AppTest:
    at.button(key="FormSubmitter:workflow_form-Create workflow").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def fill_new(at: AppTest, demo: Demo, engine_ids: list[int]) -> None:
    at.text_input(key="wf_name").set_value("Autumn newsletter")
    at.selectbox(key="wf_audience_id").set_value(demo.workflow.audience_id)
    at.selectbox(key="wf_template_id").set_value(demo.workflow.template_id)
    at.multiselect(key="wf_engine_ids").set_value(engine_ids)


def test_page_lists_the_demo_workflow_with_its_parts(demo: Demo) -> None:
    """Verify the table names the demo workflow's key, audience, template and engine."""
    at = start()
    assert at.title[0].value == "Workflows"
    [row] = at.dataframe[0].value.to_dict("records")
    assert row["Name"] == demo.workflow.name
    assert row["Key"] == demo.workflow.key
    assert row["Engines"] == "Local outbox"
    assert row["Last run"] == "never"


def test_create_with_two_engines_and_options(demo: Demo) -> None:
    """Verify a new workflow is saved with its engines in the chosen order, a key made from
    its name and every option the form shows."""
    second = add_engine(demo, "Backup outbox")
    at = start()
    fill_new(at, demo, [second, demo.workflow.engine_id])
    at.number_input(key="wf_dedupe_window_hours").set_value(12.0)
    at.radio(key="wf_on_render_error").set_value("abort")
    at.number_input(key="wf_dns_wait_hours").set_value(6.0)
    at.radio(key="wf_on_dns_unanswered").set_value("send")
    at.number_input(key="wf_auto_pause_percent").set_value(30.0)
    at.number_input(key="wf_time_limit_minutes").set_value(45.0)
    at.text_input(key="wf_report_recipients").set_value("ops@example.com, boss@example.org")
    at.checkbox(key="wf_retry_ambiguous_once").check()
    at.number_input(key="wf_retry_lifetime_hours").set_value(6.0)
    at.text_input(key="wf_unsubscribe_base_url").set_value("https://example.com/unsub")
    at.number_input(key="wf_rate").set_value(2.0)
    submit(at)

    assert not at.error, [e.value for e in at.error]
    assert "Autumn newsletter" in at.success[0].value and "autumn-newsletter" in at.success[0].value
    saved = services.find_workflow(demo.ws, "Autumn newsletter")
    assert saved.key == "autumn-newsletter"
    assert saved.engine_ids == [second, demo.workflow.engine_id]
    options = saved.options
    assert (options.dedupe_window_hours, options.time_limit_minutes) == (12, 45)
    assert options.on_render_error is RenderErrorPolicy.ABORT
    assert (options.dns_wait_hours, options.on_dns_unanswered) == (6, DnsWaitPolicy.SEND)
    assert abs(options.auto_pause_failure_rate - 0.3) < 1e-9
    assert options.report_recipients == ["ops@example.com", "boss@example.org"]
    assert options.retry_ambiguous_once and options.retry_lifetime_hours == 6
    assert options.unsubscribe_base_url == "https://example.com/unsub"
    assert options.rate == 2
    names = [r["Name"] for r in at.dataframe[0].value.to_dict("records")]
    assert "Autumn newsletter" in names
    assert at.selectbox(key="wf_pick").value == saved.id  # the form now edits it


def test_edit_the_key_of_an_existing_workflow(demo: Demo) -> None:
    """Verify picking a workflow fills the form and saving a new key keeps its id and parts."""
    at = start()
    at.selectbox(key="wf_pick").set_value(demo.workflow.id).run()
    assert at.text_input(key="wf_name").value == demo.workflow.name
    assert at.multiselect(key="wf_engine_ids").value == [demo.workflow.engine_id]
    at.text_input(key="wf_key").set_value("spring-workshop")
    at.button(key="FormSubmitter:workflow_form-Save workflow").click().run()

    assert not at.error, [e.value for e in at.error]
    [only] = services.list_workflows(demo.ws)
    assert (only.id, only.key) == (demo.workflow.id, "spring-workshop")
    assert only.options == demo.workflow.options
    assert at.dataframe[0].value.to_dict("records")[0]["Key"] == "spring-workshop"


def test_bad_key_and_bad_report_address_are_shown_by_field_and_nothing_is_saved(
    demo: Demo,
) -> None:
    """Verify a malformed key and a bad report address each get their own error, naming the
    address, and no workflow is created."""
    at = start()
    fill_new(at, demo, [demo.workflow.engine_id])
    at.text_input(key="wf_key").set_value("Autumn News!")
    at.text_input(key="wf_report_recipients").set_value("ops@example.com, boss(at)example.org")
    submit(at)

    messages = [literal(e.value) for e in at.error]
    assert "Nothing was saved: fix the fields marked below." in messages
    assert any("lowercase letters, digits and dashes" in m for m in messages)
    assert any("'boss(at)example.org' is not an email address" in m for m in messages)
    assert [w.name for w in services.list_workflows(demo.ws)] == [demo.workflow.name]
    assert at.text_input(key="wf_key").value == "Autumn News!"  # what was typed stays


def test_an_engine_gone_meanwhile_is_named_and_nothing_is_saved(demo: Demo) -> None:
    """Verify choosing an engine that is removed before saving shows which one, saves nothing."""
    doomed = add_engine(demo, "Short-lived")
    at = start()
    fill_new(at, demo, [demo.workflow.engine_id, doomed])
    with demo.ws.db.begin() as conn:
        conn.execute(sa.delete(engines_table).where(engines_table.c.id == doomed))
    submit(at)

    messages = [literal(e.value) for e in at.error]
    assert any(f"there is no engine {doomed}" in m for m in messages), messages
    assert f"engine {doomed} (not found)" in str(at.multiselect(key="wf_engine_ids").options)
    assert [w.name for w in services.list_workflows(demo.ws)] == [demo.workflow.name]


def test_a_workflow_that_ran_cannot_be_deleted(demo: Demo) -> None:
    """Verify deleting a workflow with runs says why and keeps it."""
    services.queue_run(demo.ws, demo.workflow.id, trigger="test", actor="test")
    at = start()
    at.selectbox(key="wf_pick").set_value(demo.workflow.id).run()
    at.button(key="wf_delete").click().run()

    assert any("has 1 run(s) and is kept" in literal(e.value) for e in at.error)
    assert len(services.list_workflows(demo.ws)) == 1


def test_a_workflow_shows_its_unsubscribe_findings_when_viewed_and_after_a_save(
    demo: Demo,
) -> None:
    """Verify the demo workflow (no unsubscribe at all) shows the warning when picked; once an
    https base URL is saved the warning goes and an info says the template has no link; the
    new-workflow form shows neither."""
    at = start()
    assert not any("unsubscribe" in box.value.lower() for box in (*at.warning, *at.info))

    at.selectbox(key="wf_pick").set_value(demo.workflow.id).run()
    assert [w.value for w in at.warning if "No unsubscribe is set" in w.value]

    at.text_input(key="wf_unsubscribe_base_url").set_value("https://example.com/unsub")
    at.button(key="FormSubmitter:workflow_form-Save workflow").click().run()

    assert not at.error, [e.value for e in at.error]
    assert not any("unsubscribe" in w.value.lower() for w in at.warning)
    assert any("shows no unsubscribe link" in i.value for i in at.info)


def test_unsubscribe_url_with_a_second_uri_is_refused_on_save(demo: Demo) -> None:
    """Verify saving a workflow whose unsubscribe base URL would close List-Unsubscribe's
    `<...>` and add a URI of the attacker's is refused under its field, and the stored
    workflow keeps its options."""
    at = start()
    at.selectbox(key="wf_pick").set_value(demo.workflow.id).run()
    at.text_input(key="wf_unsubscribe_base_url").set_value(
        "https://example.com/u>, <https://evil.example/x"
    )
    at.button(key="FormSubmitter:workflow_form-Save workflow").click().run()

    assert not at.exception, [e.value for e in at.exception]
    messages = [literal(e.value) for e in at.error]
    assert "Nothing was saved: fix the fields marked below." in messages
    assert any("'>' is not allowed" in m for m in messages)
    [stored] = services.list_workflows(demo.ws)
    assert stored.options == demo.workflow.options
    assert stored.options.unsubscribe_base_url is None
