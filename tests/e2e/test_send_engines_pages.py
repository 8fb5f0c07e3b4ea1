"""The Send and Engines pages under AppTest: pre-flight, a confirmed send that runs to the
end in the background, pause/cancel, engines listed masked, saved without leaking the secret,
and a connection test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import RunStatus, services
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import compliance
from outreach_core.services.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    HOME,
    READY,
    SCREENSHOTS,
    Demo,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    serve_app,
)

SECRET = "s3cr3t-Passw0rd-xyz"


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def every_text(at: AppTest) -> str:
    """Everything the page shows or holds in its elements, as one string."""
    parts: list[str] = []
    for node in at.main:
        parts.append(repr(node))
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    for element in (*at.markdown, *at.success, *at.error, *at.caption, *at.text_input):
        parts.append(str(element.value))
    return "\n".join(parts)


def wait_for_run(at: AppTest, *, until: tuple[RunStatus, ...], timeout: float = 30) -> None:
    """AppTest does not tick `run_every` fragments: poll with full reruns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        line = at.markdown[-1].value
        if any(f"**{status}**" in line for status in until):
            return
        time.sleep(0.2)
    raise AssertionError(f"run did not reach {until}: {at.markdown[-1].value}")


# --- Engines ---------------------------------------------------------------------------


def test_engines_page_lists_the_demo_outbox(demo: Demo) -> None:
    at = start("pages/engines.py")

    assert at.title[0].value == "Engines"
    table = at.dataframe[0].value
    assert list(table.columns) == ["Name", "Kind", "Limits", "URL", "From"]
    [row] = table.to_dict("records")
    assert row["Name"] == "Local outbox"
    assert row["Kind"] == "outbox"
    assert row["URL"].startswith("outbox://")
    assert row["From"] == "Outreach Demo <workshops@example.com>"


def test_engines_page_saves_smtp_engine_and_never_shows_its_password(demo: Demo) -> None:
    at = start("pages/engines.py")
    at.text_input(key="engine_name").set_value("Relay")
    at.text_input(key="engine_url").set_value(f"smtp://mailer:{SECRET}@relay.example.com:587")
    at.text_input(key="engine_from_email").set_value("news@example.com")
    at.text_input(key="engine_from_name").set_value("News")
    at.form_submit_button[0].click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert "Relay" in at.success[0].value
    assert "smtp://mailer:***@relay.example.com:587" in at.success[0].value
    rows = {r["Name"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["Relay"]["URL"] == "smtp://mailer:***@relay.example.com:587"
    assert rows["Relay"]["Kind"] == "smtp"
    assert at.text_input(key="engine_url").value == ""  # the form was cleared
    shown = every_text(at)
    assert "mailer:***@relay.example.com" in shown  # the walk sees the page's texts
    assert SECRET not in shown
    stored = {e.name: e for e in services.list_engines(demo.ws)}["Relay"]
    assert SECRET not in stored.model_dump_json()


def test_engines_page_rejects_a_bad_url_without_repeating_it(demo: Demo) -> None:
    at = start("pages/engines.py")
    at.text_input(key="engine_name").set_value("Broken")
    at.text_input(key="engine_url").set_value(f"smtp://mailer:{SECRET}@relay.example.com?tls=x")
    at.text_input(key="engine_from_email").set_value("news@example.com")
    at.form_submit_button[0].click().run()

    assert at.error and "tls=x" in at.error[0].value
    assert SECRET not in every_text(at)
    assert [e.name for e in services.list_engines(demo.ws)] == ["Local outbox"]


def test_engines_page_tests_the_outbox_connection(demo: Demo) -> None:
    at = start("pages/engines.py")
    at.button(key="test_connection").click().run()

    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("outbox ")
    assert at.success[0].value.endswith(": writable")


def test_engine_connection_error_hides_the_secret(demo: Demo) -> None:
    engine = services.save_engine(
        demo.ws,
        name="Nowhere",
        url=f"smtp://mailer:{SECRET}@127.0.0.1:9?tls=none&timeout=2",
        from_email="news@example.com",
        from_name="",
        actor="test",
    )
    at = start("pages/engines.py")
    at.session_state["test_engine"] = engine.id  # the picker formats ids with the page's names
    at.run()
    assert at.selectbox(key="test_engine").options[1] == "Nowhere"
    at.button(key="test_connection").click().run()

    assert at.error and at.error[0].value.startswith("Connection test failed")
    assert SECRET not in every_text(at)


# --- Send ------------------------------------------------------------------------------


def test_send_page_shows_the_preflight_counts(demo: Demo) -> None:
    at = start("pages/send.py")

    assert at.title[0].value == "Send"
    assert at.selectbox(key="send_page_workflow").value == demo.workflow.id
    shown = metrics(at)
    assert shown["valid"] == "50"
    assert sum(int(v) for k, v in shown.items() if k != "valid") == 4
    assert any(c.value.startswith("50 of 54 recipients") for c in at.caption)
    assert at.checkbox(key="send_confirm").label == "I confirm sending to 50 recipients"
    assert at.button(key="send_now").disabled  # not before the confirmation
    assert any("No runs yet" in i.value for i in at.info)


def unsubscribe_boxes(at: AppTest) -> list[str]:
    """The Send page's warning and info boxes (the unsubscribe findings among them)."""
    return [box.value for box in (*at.warning, *at.info)]


def set_unsubscribe(demo: Demo, *, url: str | None, mailto: str | None, link: bool) -> None:
    """Give the demo workflow these unsubscribe options, and its template a version with
    (or without) the `unsubscribe_url` link."""
    current = next(t for t in services.list_templates(demo.ws) if t.id == demo.workflow.template_id)
    footer = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>' if link else "<p>Bye</p>"
    services.save_template(
        demo.ws,
        current.name,
        TemplateSource(current.subject, (current.html or "") + footer, current.text),
        actor="test",
    )
    workflow = demo.workflow
    services.update_workflow(
        demo.ws,
        workflow.id,
        name=workflow.name,
        key=workflow.key,
        audience_id=workflow.audience_id,
        template_id=workflow.template_id,
        engine_ids=workflow.engine_ids,
        options=workflow.options.model_copy(
            update={"unsubscribe_base_url": url, "unsubscribe_mailto": mailto}
        ),
        actor="test",
    )


def test_send_page_warns_that_mail_without_unsubscribe_breaks_bulk_rules(demo: Demo) -> None:
    """Verify the demo workflow (no unsubscribe URL, no mailto) gets a warning in the
    pre-flight saying what to set, and that it does not block the send."""
    at = start("pages/send.py")

    [warning] = [w for w in at.warning if "unsubscribe" in w.value.lower()]
    assert "No unsubscribe is set" in warning.value and "Gmail and Yahoo" in warning.value
    at.checkbox(key="send_confirm").check().run()
    assert not at.button(key="send_now").disabled


def test_send_page_says_why_mailto_requests_go_unread(demo: Demo) -> None:
    """Verify an https URL with a mailto nobody reads (no OUTREACH_UNSUBSCRIBE_IMAP_URL) and a
    template without the link: a warning naming the mailto, and an info about the link."""
    set_unsubscribe(demo, url="https://example.com/unsub", mailto="unsub@example.com", link=False)
    at = start("pages/send.py")

    [warning] = [w.value for w in at.warning if "unsub" in w.value]
    assert "unsub@example.com will not be processed" in warning
    assert "OUTREACH_UNSUBSCRIBE_IMAP_URL" in warning
    assert any("shows no unsubscribe link" in i.value for i in at.info)
    assert not any("No unsubscribe is set" in box for box in unsubscribe_boxes(at))


def test_send_page_has_no_unsubscribe_note_when_all_is_set(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify an https URL, a mailto whose mailbox is configured and a template with the link:
    the pre-flight shows no unsubscribe warning or info (the counts are still there)."""
    monkeypatch.setenv(
        "OUTREACH_UNSUBSCRIBE_IMAP_URL", "imaps://unsub:mailbox-pw@127.0.0.1:993/INBOX"
    )
    set_unsubscribe(demo, url="https://example.com/unsub", mailto="unsub@example.com", link=True)
    at = start("pages/send.py")

    assert metrics(at)["valid"] == "50"
    assert not any("unsubscribe" in box.lower() for box in unsubscribe_boxes(at))
    assert "mailbox-pw" not in every_text(at)


def test_send_now_after_confirmation_sends_the_run_to_the_end(demo: Demo) -> None:
    at = start("pages/send.py")
    at.checkbox(key="send_confirm").check().run()
    assert not at.button(key="send_now").disabled
    at.button(key="send_now").click().run()

    assert not at.exception, [e.value for e in at.exception]
    [summary] = services.recent_runs(demo.ws)
    run_id = summary.run.id
    assert summary.run.trigger == "dashboard"
    assert at.success[0].value == f"Run {run_id} queued and sending."
    assert at.session_state["watch_run"] == run_id
    assert at.checkbox(key="send_confirm").value is False  # one confirmation, one send

    wait_for_run(at, until=(RunStatus.COMPLETED,))
    assert at.progress[0].value == 100
    shown = metrics(at)
    assert (shown["Sent"], shown["Skipped"], shown["Failed"], shown["Pending"]) == (
        "50",
        "4",
        "0",
        "0",
    )
    counts = services.run_summary(demo.ws, run_id).counts
    assert (counts.sent, counts.skipped, counts.total) == (50, 4, 54)
    outbox = Path(demo.ws.settings.data_dir) / "outbox"
    assert len(list(message_files(outbox))) == 50
    assert at.button(key="run_pause").disabled
    assert at.button(key="run_cancel").disabled


def test_send_page_pauses_resumes_and_cancels_a_run(demo: Demo) -> None:
    slow = demo.workflow.options.model_copy(update={"rate": 5, "burst": 1, "batch_size": 2})
    run_id = services.queue_run(
        demo.ws, demo.workflow.id, trigger="test", actor="test", options=slow
    )
    services.execute_in_background(demo.ws, run_id)
    at = start("pages/send.py")
    assert at.selectbox(key="watch_run").value == run_id
    wait_for_run(at, until=(RunStatus.SENDING,))

    at.button(key="run_pause").click().run()
    assert services.run_summary(demo.ws, run_id).run.status is RunStatus.PAUSED
    assert not at.button(key="run_resume").disabled

    at.button(key="run_resume").click().run()
    wait_for_run(at, until=(RunStatus.SENDING,))
    entries = {(e["action"], e["subject"], e["actor"]) for e in compliance.audit_entries(demo.ws)}
    subject = f"run {run_id}"
    assert {("run.paused", subject, "dashboard"), ("run.resume", subject, "dashboard")} <= entries
    at.button(key="run_cancel").click().run()
    wait_for_run(at, until=(RunStatus.CANCELLED,))
    summary = services.run_summary(demo.ws, run_id)
    assert summary.run.status is RunStatus.CANCELLED
    # the rest is never sent: cancelled, none left pending
    assert summary.counts.cancelled > 0 and summary.counts.pending == 0
    assert at.progress[0].value < 100


def test_send_page_without_workflows_says_so(data_dir: Path) -> None:
    at = start("pages/send.py")

    assert any("No workflow yet" in i.value for i in at.info)
    assert not at.button


# --- Browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_app_url(tmp_path_factory: pytest.TempPathFactory, dns_server: DnsServer) -> Iterator[str]:
    """A server of its own over a freshly loaded demo with no run yet (the shared browser
    server has sent the demo once; its dedupe window would skip every recipient)."""
    data = tmp_path_factory.mktemp("send-browser") / "data"
    ws = open_test_workspace(data)
    try:
        assert load_demo(ws) is not None
    finally:
        ws.close()
    with serve_app(data, nameserver=dns_server.nameserver) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    with launched_chromium(chromium_path) as chromium:
        yield chromium


@pytest.mark.browser
def test_browser_send_now_shows_live_progress_to_100(browser, fresh_app_url: str) -> None:
    with opened_page(browser, viewport={"width": 1400, "height": 1400}) as page:
        open_from_overview(page, fresh_app_url, "Send")
        page.get_by_text("50 of 54 recipients").wait_for()

        send = page.get_by_role("button", name="Send now")
        assert send.is_disabled()
        page.get_by_text("I confirm sending to 50 recipients").click()
        page.wait_for_selector(READY)
        send.click()
        # (the "queued and sending" note may already be gone when a short run has ended)

        bar = page.locator('[data-testid="stProgress"] [role="progressbar"]')
        bar.first.wait_for()
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # During a rerun the previous bar can linger beside the new one: take the
            # furthest (progress only grows).
            values = bar.evaluate_all("els => els.map(e => e.getAttribute('aria-valuenow'))")
            value = max((int(float(v or 0)) for v in values), default=0)
            if not seen or seen[-1] != value:
                seen.append(value)
            if value == 100:
                break
            time.sleep(0.2)
        assert seen[-1] == 100, seen  # reached by the fragment's own ticks, no reload
        page.get_by_text("COMPLETED", exact=True).wait_for()
        page.get_by_text("54 of 54 recipients done").wait_for()
        # once the run stopped, the fragment reran the whole page: the note is gone
        page.get_by_text("queued and sending").wait_for(state="detached")
        page.wait_for_selector(READY)
        page.wait_for_timeout(1500)  # the bar's width is animated towards its value
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "send.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print("progress values seen:", seen)


@pytest.mark.browser
def test_browser_engines_page_lists_masked_and_tests_the_outbox(
    browser, fresh_app_url: str
) -> None:
    with opened_page(browser, viewport={"width": 1400, "height": 1100}) as page:
        open_from_overview(page, fresh_app_url, "Engines")
        assert (
            page.get_by_label("URL", exact=True).and_(page.locator("input")).get_attribute("type")
            == "password"
        )
        page.get_by_role("button", name="Test connection").click()
        page.get_by_text(": writable").wait_for()
        grid = page.locator('[data-testid="stDataFrame"]')
        grid.locator('[role="gridcell"]').filter(has_text="Local outbox").wait_for(state="attached")
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "engines.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
