"""Follow-up steps on the dashboard, under AppTest over the demo workspace: the Workflows
page's steps editor (saved, refused with a gap, cleared) and the Send page's recipients per
step (before any run, then after step 1 was sent and two recipients replied)."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from outreach_core.adapters.store import deliveries
from outreach_core.adapters.store.delivery_events import DeliveryEvent, record_event
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.steps import StepDefinition
from outreach_core.services import follow_ups
from tests.e2e.dashboard import HOME, Demo, send_run


def literal(value: str) -> str:
    """A box's text as the browser shows it: the backslash escapes of `ui.plain` removed."""
    return re.sub(r"\\(.)", r"\1", value)


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_editor(demo: Demo) -> AppTest:
    at = start("pages/workflows.py")
    at.selectbox(key="wf_pick").set_value(demo.workflow.id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def save_steps(at: AppTest) -> AppTest:
    at.button(key="FormSubmitter:steps_form-Save steps").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_steps_editor_saves_a_follow_up(demo: Demo) -> None:
    """Verify step 2 switched on with a template, 4 days and a new thread is saved as such,
    and shown again when the page is drawn anew."""
    at = open_editor(demo)
    assert any(s.value == "Follow-up steps" for s in at.subheader)
    assert at.checkbox(key="wfs_on_2").value is False
    at.checkbox(key="wfs_on_2").check()
    at.selectbox(key="wfs_template_2").set_value(demo.workflow.template_id)
    at.number_input(key="wfs_days_2").set_value(4)
    at.checkbox(key="wfs_thread_2").uncheck()
    save_steps(at)

    assert [s.value for s in at.success] == ["1 follow-up step saved."]
    assert follow_ups.list_steps(demo.ws, demo.workflow.id) == [
        StepDefinition(step=2, template_id=demo.workflow.template_id, delay_days=4, thread=False)
    ]
    again = open_editor(demo)
    assert again.checkbox(key="wfs_on_2").value is True
    assert again.number_input(key="wfs_days_2").value == 4
    assert again.checkbox(key="wfs_thread_2").value is False


def test_a_gap_or_a_missing_template_is_refused_and_nothing_saved(demo: Demo) -> None:
    """Verify step 3 without step 2 names the missing step, a step without a template asks
    for one, and neither saves anything."""
    at = open_editor(demo)
    at.checkbox(key="wfs_on_3").check()
    at.selectbox(key="wfs_template_3").set_value(demo.workflow.template_id)
    save_steps(at)
    assert any("step 2 is missing" in e.value for e in at.error), [e.value for e in at.error]
    at.checkbox(key="wfs_on_2").check()
    save_steps(at)
    assert "Step 2: choose its template." in [literal(e.value) for e in at.error]
    assert follow_ups.list_steps(demo.ws, demo.workflow.id) == []


def test_clearing_every_step_leaves_a_one_step_workflow(demo: Demo) -> None:
    """Verify switching off the saved steps removes them."""
    follow_ups.save_steps(
        demo.ws,
        demo.workflow.id,
        [StepDefinition(step=2, template_id=demo.workflow.template_id, delay_days=2)],
        actor="test",
    )
    at = open_editor(demo)
    at.checkbox(key="wfs_on_2").uncheck()
    save_steps(at)
    assert follow_ups.list_steps(demo.ws, demo.workflow.id) == []
    assert "the workflow sends its own message only" in at.success[0].value


def reach(at: AppTest) -> list[dict[str, object]]:
    [table] = [d for d in at.dataframe if "Recipients" in d.value.columns]
    return table.value.to_dict("records")


def test_the_send_page_shows_how_many_each_step_reaches(demo: Demo) -> None:
    """Verify the Send page lists step 1 with the pre-flight's 50 and step 2 as not known yet;
    once step 1 was sent and two recipients replied, step 2 will reach the 48 others."""
    one_step = start("pages/send.py")  # a one-step workflow shows no table of steps
    assert not any("Recipients" in d.value.columns for d in one_step.dataframe)
    follow_ups.save_steps(
        demo.ws,
        demo.workflow.id,
        [StepDefinition(step=2, template_id=demo.workflow.template_id, delay_days=3)],
        actor="test",
    )
    rows = reach(start("pages/send.py"))
    assert [(r["Step"], r["Recipients"]) for r in rows] == [(1, 50), (2, None)]
    assert "have not replied" in str(rows[1]["Note"])

    run_id = send_run(demo.ws, demo.workflow)
    with demo.ws.db.begin() as conn:
        sent = [d for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"]
        for n, delivery in enumerate(sent[:2]):
            record_event(
                conn,
                DeliveryEvent(delivery.id, FeedbackKind.REPLY, f"1:1:{n}", at=utcnow()),
                now=utcnow(),
            )
    rows = reach(start("pages/send.py"))
    assert rows[1]["Step"] == 2
    assert rows[1]["Recipients"] == len(sent) - 2 == 48
    assert f"after run {run_id} of step 1" in str(rows[1]["Note"])
