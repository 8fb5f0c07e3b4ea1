"""The compliance routes served by uvicorn on loopback, on SQLite and PostgreSQL: one-click
unsubscribe, the SES / SendGrid / Mailgun webhooks, and what they do to the ledger, the
suppression list and the next run (the pre-send re-check and the complaint brake)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.store import deliveries, runs, tables
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.complaints import BRAKE_PREFIX
from outreach_core.domain.models import Feedback, SendOptions, SuppressionReason, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.http_api import create_app
from outreach_core.services import compliance, sending
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.asgi_server import StaticFiles, serve_asgi
from tests.signing import (
    TOPIC_ARN,
    SendGridSigner,
    SnsSigner,
    mailgun_body,
    ses_bounce,
    ses_notification,
    subscription_confirmation,
)

MG_KEY = "key-mg-signing-4f1c2b"
PUBLIC_BASE = "https://mail.example.com/unsubscribe"
TEMPLATE = TemplateSource("Hi {{ name }}", None, "Hi {{ name }}\nLeave: {{ unsubscribe_url }}")


def seed(ws: Workspace, outbox: Path, count: int = 5, *, name: str = "wf") -> Workflow:
    rows = [{"email": f"Person{i}@Example.com", "name": f"P{i}"} for i in range(count)]
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile("contacts.csv", ["email", "name"], "email", rows),
        template=TEMPLATE,
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(
            rate=0, batch_size=2, max_attempts=1, unsubscribe_base_url=PUBLIC_BASE,
            dedupe_window_hours=0,
        ),
        actor="test",
    )  # fmt: skip


def send(ws: Workspace, workflow: Workflow) -> int:
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id


def ledger(ws: Workspace, run_id: int) -> dict[str, Any]:
    with ws.db.connect() as conn:
        return {d.email_normalized: d for d in deliveries.list_deliveries(conn, run_id)}


def suppressed(ws: Workspace) -> dict[str, str]:
    return {s.email_normalized: s.reason for s in compliance.list_suppressions(ws)}


def feedback_of(ws: Workspace, delivery_id: int) -> str | None:
    with ws.db.connect() as conn:
        return (
            conn.execute(tables.deliveries.select().where(tables.deliveries.c.id == delivery_id))
            .one()
            ._mapping["feedback"]
        )


def unsubscribe_link(outbox: Path, email: str) -> str:
    """The List-Unsubscribe URL of the message sent to `email`, as path + query."""
    for path in message_files(outbox):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"].lower() == email.lower():
            url = re.search(r"<(https://[^>]+)>", str(message["List-Unsubscribe"])).group(1)
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            parts = urlsplit(url)
            return f"{parts.path}?{parts.query}"
    raise AssertionError(f"no message to {email}")


def configure_webhooks(ws: Workspace, sendgrid: SendGridSigner, **more: object) -> None:
    """The webhook settings of a daemon that takes the samples' topic and keys."""
    ws.settings = ws.settings.model_copy(
        update={
            "sns_cert_hosts": "127.0.0.1",
            "sns_topic_arns": TOPIC_ARN,
            "sendgrid_webhook_public_key": sendgrid.public_key,
            "mailgun_webhook_signing_key": MG_KEY,
            **more,
        }
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def sns() -> SnsSigner:
    return SnsSigner()


@pytest.fixture
def sendgrid() -> SendGridSigner:
    return SendGridSigner()


@pytest.fixture
def certs(sns: SnsSigner) -> Iterator[StaticFiles]:
    with StaticFiles(
        {"/cert.pem": sns.cert_pem, "/confirm": b"<ConfirmSubscriptionResponse/>"}
    ) as s:
        yield s


@pytest.fixture
def api(
    workspace: Workspace, sendgrid: SendGridSigner, certs: StaticFiles
) -> Iterator[httpx.Client]:
    """The router over the workspace, webhook keys configured, served on loopback."""
    configure_webhooks(workspace, sendgrid)
    app = create_app(workspace, api_token=None)
    with serve_asgi(app) as base, httpx.Client(base_url=base, follow_redirects=False) as client:
        yield client


def test_one_click_post_suppresses_exactly_that_address_and_the_next_run_skips_it(
    workspace: Workspace, outbox: Path, api: httpx.Client
) -> None:
    """Verify RFC 8058 one-click: 200 without redirect, one address suppressed, a tampered
    token refused, and the next run skips the address with reason `suppressed`."""
    workflow = seed(workspace, outbox)
    first = send(workspace, workflow)
    link = unsubscribe_link(outbox, "Person1@example.com")

    page = api.get(link)
    assert page.status_code == 200 and "person1@example.com" in page.text.lower()
    assert '<form method="post">' in page.text
    assert suppressed(workspace) == {}  # GET only asks

    tampered = link.replace("token=", "token=A")
    refused = api.post(tampered, content=b"List-Unsubscribe=One-Click")
    assert refused.status_code == 403
    other = link.replace("person1", "person2").replace("Person1", "Person2")
    assert api.post(other, content=b"List-Unsubscribe=One-Click").status_code == 403
    assert suppressed(workspace) == {}

    done = api.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200 and not done.is_redirect
    assert suppressed(workspace) == {"person1@example.com": "unsubscribed"}
    assert api.post(link, content=b"List-Unsubscribe=One-Click").status_code == 200  # again

    second = send(workspace, workflow)
    after = ledger(workspace, second)
    assert after["person1@example.com"].status is DeliveryStatus.SKIPPED
    assert after["person1@example.com"].reason.startswith("suppressed: ")
    assert {k for k, d in after.items() if d.status is DeliveryStatus.SENT} == {
        f"person{i}@example.com" for i in (0, 2, 3, 4)
    }
    assert ledger(workspace, first)["person1@example.com"].status is DeliveryStatus.SENT


def test_path_form_of_the_link_and_html_escaping(workspace: Workspace, api: httpx.Client) -> None:
    """Verify /unsubscribe/TOKEN?email= works and the address is HTML-escaped on the page."""
    email = "a<b>@example.com"
    token = compliance.unsubscribe_key(workspace)
    from outreach_core.domain.unsubscribe_links import token as make_token

    t = make_token(token, email)
    page = api.get(f"/unsubscribe/{t}", params={"email": email})
    assert page.status_code == 200
    assert "a&lt;b&gt;@example.com" in page.text and "<b>" not in page.text
    # not an address we can suppress: refused, not a crash
    assert api.post(f"/unsubscribe/{t}", params={"email": email}).status_code == 403
    good = "x@example.com"
    ok = api.post(f"/unsubscribe/{make_token(token, good)}", params={"email": good})
    assert ok.status_code == 200 and suppressed(workspace) == {good: "unsubscribed"}


def test_address_suppressed_after_freezing_is_skipped_just_before_sending(
    workspace: Workspace, outbox: Path
) -> None:
    """Verify the claim-time re-check: suppressed between freeze and send -> skipped."""
    workflow = seed(workspace, outbox)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
    worker = new_worker_id()
    run = sending.acquire_run(workspace, run_id, worker_id=worker)
    assert sending.freeze_audience(workspace, run)
    compliance.suppress(
        workspace, "PERSON3@example.com", reason=SuppressionReason.MANUAL, actor="ann"
    )
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    done = asyncio.run(sending.execute(workspace, run, worker_id=worker, stop=StopSignal()))
    assert done.status is RunStatus.COMPLETED
    after = ledger(workspace, run_id)
    assert after["person3@example.com"].status is DeliveryStatus.SKIPPED
    assert after["person3@example.com"].reason == "suppressed: on the suppression list (manual)"
    # the claim wrote the sole engine and its send time; the skip took both back
    assert (after["person3@example.com"].engine_id, after["person3@example.com"].sent_at) == (
        None,
        None,
    )
    assert all(d.engine_id is not None for d in after.values() if d.status is DeliveryStatus.SENT)
    assert sum(d.status is DeliveryStatus.SENT for d in after.values()) == 4
    assert not any("person3" in p.name for p in message_files(outbox))


def test_ses_signed_bounce_suppresses_and_marks_the_delivery(
    workspace: Workspace, outbox: Path, api: httpx.Client, sns: SnsSigner, certs: StaticFiles
) -> None:
    """Verify a signed SES bounce updates ledger and list; unsigned and re-signed are refused."""
    workflow = seed(workspace, outbox, 3)
    sent = ledger(workspace, send(workspace, workflow))["person2@example.com"]
    event = ses_bounce("Person2@Example.com", delivery_id=sent.id)
    message = ses_notification(event, cert_url=f"{certs.base}/cert.pem")

    assert api.post("/webhooks/ses", content=json.dumps(message)).status_code == 403
    foreign = SnsSigner().sign(message)
    assert api.post("/webhooks/ses", content=json.dumps(foreign)).status_code == 403
    elsewhere = sns.sign({**message, "SigningCertURL": "https://evil.example/cert.pem"})
    assert api.post("/webhooks/ses", content=json.dumps(elsewhere)).status_code == 403
    assert suppressed(workspace) == {}

    answer = api.post(
        "/webhooks/ses",
        content=json.dumps(sns.sign(message)),
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1}
    assert suppressed(workspace) == {"person2@example.com": "bounced"}
    assert feedback_of(workspace, sent.id) == Feedback.BOUNCED


def test_ses_subscription_confirmation_is_confirmed(
    api: httpx.Client, sns: SnsSigner, certs: StaticFiles
) -> None:
    """Verify a signed SubscriptionConfirmation makes us GET its SubscribeURL."""
    message = sns.sign(
        subscription_confirmation(
            cert_url=f"{certs.base}/cert.pem",
            subscribe_url=f"{certs.base}/confirm?Action=ConfirmSubscription&Token=tok",
        )
    )
    answer = api.post("/webhooks/ses", content=json.dumps(message))
    assert answer.status_code == 200 and answer.json() == {"confirmed": True}
    assert "/confirm?Action=ConfirmSubscription&Token=tok" in certs.requested


def test_sendgrid_signed_complaint_is_recorded_and_foreign_signature_refused(
    workspace: Workspace, outbox: Path, api: httpx.Client, sendgrid: SendGridSigner
) -> None:
    """Verify the SendGrid webhook: signed spamreport -> complained; unsigned/re-signed 403."""
    workflow = seed(workspace, outbox, 3)
    sent = ledger(workspace, send(workspace, workflow))["person0@example.com"]
    body = json.dumps(
        [{"email": "person0@example.com", "event": "spamreport", "outreach_delivery": str(sent.id)}]
    ).encode()
    assert api.post("/webhooks/sendgrid", content=body).status_code == 403
    foreign = SendGridSigner().headers(body)
    assert api.post("/webhooks/sendgrid", content=body, headers=foreign).status_code == 403
    assert suppressed(workspace) == {}
    answer = api.post("/webhooks/sendgrid", content=body, headers=sendgrid.headers(body))
    assert answer.status_code == 200 and answer.json() == {"recorded": 1}
    assert suppressed(workspace) == {"person0@example.com": "complained"}
    assert feedback_of(workspace, sent.id) == Feedback.COMPLAINED


def test_mailgun_signed_bounce_is_recorded_stale_and_replayed_refused(
    workspace: Workspace, outbox: Path, api: httpx.Client
) -> None:
    """Verify the Mailgun webhook: HMAC checked, stale timestamps and replays refused."""
    workflow = seed(workspace, outbox, 3)
    sent = ledger(workspace, send(workspace, workflow))["person1@example.com"]
    data = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "person1@example.com",
        "user-variables": {"outreach-delivery": str(sent.id)},
    }
    now = int(time.time())
    stale = mailgun_body(MG_KEY, data, timestamp=now - 3600, token="old")
    assert api.post("/webhooks/mailgun", json=stale).status_code == 403
    wrong = mailgun_body("another-key", data, timestamp=now, token="w")
    assert api.post("/webhooks/mailgun", json=wrong).status_code == 403
    assert api.post("/webhooks/mailgun", json={"event-data": data}).status_code == 400
    assert suppressed(workspace) == {}
    good = mailgun_body(MG_KEY, data, timestamp=now, token="fresh-token")
    answer = api.post("/webhooks/mailgun", json=good)
    assert answer.status_code == 200 and answer.json() == {"recorded": 1}
    assert suppressed(workspace) == {"person1@example.com": "bounced"}
    assert feedback_of(workspace, sent.id) == Feedback.BOUNCED
    assert api.post("/webhooks/mailgun", json=good).status_code == 403  # replay


def test_complaints_over_the_threshold_pause_the_next_run_with_a_reason(
    workspace: Workspace, outbox: Path
) -> None:
    """Verify the brake: 1 complaint in 6 sends (> 0.1 %) pauses a run of that engine."""
    workflow = seed(workspace, outbox, 6)
    sent = ledger(workspace, send(workspace, workflow))
    assert compliance.braked_engines(workspace) == []
    compliance.record_event(
        workspace,
        compliance.ProviderEvent(
            provider="sendgrid",
            feedback=Feedback.COMPLAINED,
            email="person4@example.com",
            delivery_id=sent["person4@example.com"].id,
        ),
    )
    [braked] = compliance.braked_engines(workspace)
    assert (braked.sends, braked.complaints) == (6, 1)
    run_id = send(workspace, workflow)
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    assert run.status is RunStatus.PAUSED
    assert run.status_reason and run.status_reason.startswith(BRAKE_PREFIX)
    assert "1 complaints in its last 6 sends" in run.status_reason
    assert all(d.status is not DeliveryStatus.SENT for d in ledger(workspace, run_id).values())

    # reviewed: the old complaint stops counting and the paused run finishes
    compliance.mark_complaints_reviewed(workspace, braked.engine_id, actor="ann")
    assert compliance.braked_engines(workspace) == []
    done = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert done.status is RunStatus.COMPLETED
    resumed = ledger(workspace, run_id)
    assert sum(d.status is DeliveryStatus.SENT for d in resumed.values()) == 5
    assert resumed["person4@example.com"].reason.startswith("suppressed: ")  # it complained
    # a new complaint counts again: 1 in 11 sends is over the threshold
    compliance.record_event(
        workspace,
        compliance.ProviderEvent(
            provider="mailgun", feedback=Feedback.COMPLAINED, email="person0@example.com",
            delivery_id=ledger(workspace, run_id)["person0@example.com"].id,
        ),
    )  # fmt: skip
    [again] = compliance.braked_engines(workspace)
    assert (again.sends, again.complaints) == (11, 1)
