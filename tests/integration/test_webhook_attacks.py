"""Forged and replayed provider events against the daemon's HTTP app, served by uvicorn on
loopback, on SQLite and PostgreSQL: each attack is refused and changes nothing (suppression
list, delivery feedback, audit trail, the complaint brake).

The SNS certificate and subscription stand-in is a loopback server; the app's HTTP client
reaches loopback only and records every URL it is asked for, so a test can also show that a
refused message made the daemon fetch or confirm nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from outreach_core.adapters.store import seen_events
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import Workflow
from outreach_core.domain.states import RunStatus
from outreach_core.entrypoints.http_api import create_app
from outreach_core.services import compliance
from tests.asgi_server import StaticFiles, serve_asgi
from tests.integration import test_compliance_api as base
from tests.signing import (
    SendGridSigner,
    SnsSigner,
    mailgun_body,
    ses_notification,
    sns_time,
    subscription_confirmation,
)

from conftest import make_settings

ATTACKER_TOPIC = "arn:aws:sns:us-east-1:999999999999:ses-events"
MG_KEY = base.MG_KEY


class LoopbackOnly(httpx.BaseTransport):
    """The daemon's outgoing HTTP in these tests: loopback only, every URL recorded."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        if request.url.host != "127.0.0.1":
            raise httpx.ConnectError("the tests reach loopback servers only", request=request)
        return self._inner.handle_request(request)


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
    with StaticFiles({"/cert.pem": sns.cert_pem, "/confirm": b"<Confirmed/>"}) as server:
        yield server


@pytest.fixture
def outgoing() -> LoopbackOnly:
    return LoopbackOnly()


@contextmanager
def daemon_app(
    ws: Workspace, sendgrid: SendGridSigner, outgoing: LoopbackOnly, **settings: object
) -> Iterator[httpx.Client]:
    """The daemon's HTTP app over `ws` (webhook keys and the samples' topic configured,
    `settings` on top), served by uvicorn; a client of it."""
    base.configure_webhooks(ws, sendgrid, **settings)
    http = httpx.Client(transport=outgoing, timeout=10, follow_redirects=False)
    app = create_app(ws, api_token=None, http=http)
    with serve_asgi(app) as url, httpx.Client(base_url=url) as client:
        yield client
    http.close()


@pytest.fixture
def api(
    workspace: Workspace, sendgrid: SendGridSigner, outgoing: LoopbackOnly
) -> Iterator[httpx.Client]:
    with daemon_app(workspace, sendgrid, outgoing) as client:
        yield client


def snapshot(ws: Workspace) -> dict[str, Any]:
    """What a provider event could change."""
    with ws.db.connect() as conn:
        feedback = conn.execute(
            base.tables.deliveries.select().with_only_columns(
                base.tables.deliveries.c.id, base.tables.deliveries.c.feedback
            )
        ).all()
    return {
        "suppressed": base.suppressed(ws),
        "feedback": sorted(map(tuple, feedback)),
        "audit": len(compliance.audit_entries(ws, limit=100_000)),
        "braked": compliance.braked_engines(ws),
    }


def sent_ids(ws: Workspace, outbox: Path, count: int = 6) -> tuple[Workflow, dict[str, int]]:
    workflow = base.seed(ws, outbox, count)
    ledger = base.ledger(ws, base.send(ws, workflow))
    return workflow, {email: delivery.id for email, delivery in ledger.items()}


def ses_complaint(email: str, delivery_id: int) -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": email}]},
        "mail": {
            "messageId": f"ses-{delivery_id}",
            "tags": {"outreach_delivery": [str(delivery_id)]},
        },
    }


def post_sns(api: httpx.Client, message: dict[str, Any]) -> httpx.Response:
    return api.post("/webhooks/ses", content=json.dumps(message))


# --- SNS ------------------------------------------------------------------------------------


def test_signed_complaints_from_an_unlisted_topic_change_nothing(
    workspace: Workspace,
    outbox: Path,
    api: httpx.Client,
    sns: SnsSigner,
    certs: StaticFiles,
    outgoing: LoopbackOnly,
) -> None:
    """Verify the attack of issue "any AWS account brakes engines": three correctly signed
    complaints on real delivery ids from a topic that is not listed are refused with 403,
    suppress nothing, mark no delivery, pause no engine (the next run completes) and make the
    daemon fetch no certificate; the same complaint from the listed topic is taken."""
    workflow, ids = sent_ids(workspace, outbox)
    before = snapshot(workspace)
    for n, email in enumerate(sorted(ids)[:3]):
        event = ses_complaint(email, ids[email])
        message = ses_notification(
            event, cert_url=f"{certs.base}/cert.pem", message_id=f"a-{n}", topic=ATTACKER_TOPIC
        )
        refused = post_sns(api, sns.sign(message))
        assert refused.status_code == 403
        assert ATTACKER_TOPIC in refused.json()["detail"]
        assert "OUTREACH_SNS_TOPIC_ARNS" in refused.json()["detail"]
    assert snapshot(workspace) == before
    assert outgoing.asked == []
    rerun = base.send(workspace, workflow)
    with workspace.db.connect() as conn:
        assert base.runs.get_run(conn, rerun).status is RunStatus.COMPLETED

    email = sorted(ids)[0]
    listed = ses_notification(
        ses_complaint(email, ids[email]), cert_url=f"{certs.base}/cert.pem", message_id="ok"
    )
    taken = post_sns(api, sns.sign(listed))
    assert taken.status_code == 200 and taken.json() == {"recorded": 1}
    assert base.suppressed(workspace) == {email: "complained"}


def test_without_listed_topics_every_sns_message_is_refused_saying_what_to_set(
    workspace: Workspace,
    sendgrid: SendGridSigner,
    outgoing: LoopbackOnly,
    sns: SnsSigner,
    certs: StaticFiles,
) -> None:
    """Verify an empty OUTREACH_SNS_TOPIC_ARNS refuses a signed message of any topic (the
    samples' one too), with a 403 that says how to set it."""
    with daemon_app(workspace, sendgrid, outgoing, sns_topic_arns="") as api:
        event = ses_complaint("a@example.com", 1)
        message = ses_notification(event, cert_url=f"{certs.base}/cert.pem")
        refused = post_sns(api, sns.sign(message))
        confirm = subscription_confirmation(
            cert_url=f"{certs.base}/cert.pem", subscribe_url=f"{certs.base}/confirm"
        )
        refused_confirm = post_sns(api, sns.sign(confirm))
    for answer in (refused, refused_confirm):
        assert answer.status_code == 403
        detail = answer.json()["detail"]
        assert "OUTREACH_SNS_TOPIC_ARNS lists no topic" in detail
        assert "arn:aws:sns:" in detail and "restart the daemon" in detail
    assert base.suppressed(workspace) == {}
    assert outgoing.asked == [] and certs.requested == []


def test_subscription_confirmation_of_a_foreign_topic_is_not_confirmed(
    api: httpx.Client, sns: SnsSigner, certs: StaticFiles, outgoing: LoopbackOnly
) -> None:
    """Verify a signed SubscriptionConfirmation of an unlisted topic is refused and its
    SubscribeURL never requested; one of the listed topic is confirmed."""
    foreign = subscription_confirmation(
        cert_url=f"{certs.base}/cert.pem",
        subscribe_url=f"{certs.base}/confirm?Action=ConfirmSubscription&Token=evil",
        topic=ATTACKER_TOPIC,
    )
    refused = post_sns(api, sns.sign(foreign))
    assert refused.status_code == 403 and ATTACKER_TOPIC in refused.json()["detail"]
    assert not any("/confirm" in path for path in certs.requested)
    assert not any("/confirm" in url for url in outgoing.asked)

    ours = subscription_confirmation(
        cert_url=f"{certs.base}/cert.pem",
        subscribe_url=f"{certs.base}/confirm?Action=ConfirmSubscription&Token=ours",
    )
    confirmed = post_sns(api, sns.sign(ours))
    assert confirmed.status_code == 200 and confirmed.json() == {"confirmed": True}
    assert [p for p in certs.requested if "/confirm" in p] == [
        "/confirm?Action=ConfirmSubscription&Token=ours"
    ]


def dated(spec: str, form: str) -> str:
    """`now-301` / `now+3600` as a timestamp of the test's own moment (SNS or Unix form);
    any other text as it is."""
    if not spec.startswith("now"):
        return spec
    moment = datetime.now(UTC) + timedelta(seconds=int(spec[3:]))
    return sns_time(moment) if form == "sns" else str(int(moment.timestamp()))


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [
        ("now-301", "older than OUTREACH_WEBHOOK_MAX_AGE_S (300 s)"),
        ("2019-03-01T08:00:00.000Z", "older than OUTREACH_WEBHOOK_MAX_AGE_S"),
        ("now+3600", "in the future"),
        ("2026-11-29T12:00:00", "not an ISO 8601 time with a zone"),
        ("yesterday", "not an ISO 8601 time with a zone"),
    ],
)
def test_an_old_future_or_undated_sns_message_is_refused(
    workspace: Workspace,
    outbox: Path,
    api: httpx.Client,
    sns: SnsSigner,
    certs: StaticFiles,
    timestamp: str,
    why: str,
) -> None:
    """Verify a correctly signed bounce dated outside the max age (300 s), an hour ahead, or
    without a usable date is refused and changes nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    before = snapshot(workspace)
    message = ses_notification(
        base.ses_bounce(email, delivery_id=ids[email]),
        cert_url=f"{certs.base}/cert.pem",
        timestamp=dated(timestamp, "sns"),
    )
    refused = post_sns(api, sns.sign(message))
    assert refused.status_code == 403
    assert why in refused.json()["detail"]
    assert snapshot(workspace) == before


def test_the_same_message_id_twice_changes_nothing_the_second_time(
    workspace: Workspace,
    outbox: Path,
    api: httpx.Client,
    sns: SnsSigner,
    sendgrid: SendGridSigner,
    outgoing: LoopbackOnly,
    certs: StaticFiles,
) -> None:
    """Verify SNS MessageId deduplication in the database: a bounce is recorded once; after a
    person takes the address off the list, the same message delivered again (to this app and
    to a new one over the same database) is acknowledged with 200 and changes nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    message = sns.sign(
        ses_notification(
            base.ses_bounce(email, delivery_id=ids[email]),
            cert_url=f"{certs.base}/cert.pem",
            message_id="3f1c9a52-0d6e-5b7a-9a43-2f0e3c1d7b11",
        )
    )
    first = post_sns(api, message)
    assert first.status_code == 200 and first.json() == {"recorded": 1}
    assert base.suppressed(workspace) == {email: "bounced"}
    compliance.unsuppress(workspace, email, actor="ann")
    before = snapshot(workspace)

    again = post_sns(api, message)
    assert again.status_code == 200 and again.json() == {"recorded": 0, "duplicate": True}
    assert snapshot(workspace) == before
    with daemon_app(workspace, sendgrid, outgoing) as restarted:
        assert post_sns(restarted, message).json() == {"recorded": 0, "duplicate": True}
    assert snapshot(workspace) == before
    with workspace.db.connect() as conn:
        assert seen_events.count_seen(conn, "ses") == 1


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.x.s3.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
        "https://x@sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    ],
)
def test_a_certificate_outside_the_sns_hosts_of_aws_is_refused_unfetched(
    workspace: Workspace,
    api: httpx.Client,
    sns: SnsSigner,
    outgoing: LoopbackOnly,
    cert_url: str,
) -> None:
    """Verify a signed message whose SigningCertURL is an S3 bucket named like SNS, a
    lookalike domain, plain http, another port or a user name is refused before anything is
    fetched."""
    message = sns.sign(ses_notification(ses_complaint("a@example.com", 1), cert_url=cert_url))
    refused = post_sns(api, message)
    assert refused.status_code == 403
    assert "certificate" in refused.json()["detail"]
    assert outgoing.asked == []
    assert base.suppressed(workspace) == {}


def test_a_subscribe_url_outside_the_sns_hosts_of_aws_is_not_requested(
    api: httpx.Client, sns: SnsSigner, certs: StaticFiles, outgoing: LoopbackOnly
) -> None:
    """Verify a listed topic's signed confirmation whose SubscribeURL is an S3 bucket named
    like SNS is refused, and that URL is never requested."""
    target = "https://sns.x.s3.amazonaws.com/?Action=ConfirmSubscription&Token=t"
    message = subscription_confirmation(cert_url=f"{certs.base}/cert.pem", subscribe_url=target)
    refused = post_sns(api, sns.sign(message))
    assert refused.status_code == 403 and "SubscribeURL refused" in refused.json()["detail"]
    assert target not in outgoing.asked


# --- SendGrid ---------------------------------------------------------------------------------


def sendgrid_spam(email: str, delivery_id: int) -> bytes:
    return json.dumps(
        [{"email": email, "event": "spamreport", "outreach_delivery": str(delivery_id)}]
    ).encode()


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [
        ("978307200", "older than OUTREACH_WEBHOOK_MAX_AGE_S"),  # 2001-01-01
        ("now-301", "older than OUTREACH_WEBHOOK_MAX_AGE_S"),
        ("now+3600", "in the future"),
        ("nan", "not a Unix time"),
        ("inf", "not a Unix time"),
        ("1e999", "not a Unix time"),
        ("-1", "not a Unix time"),
        ("1764417600.5e3", "not a Unix time"),
    ],
)
def test_a_sendgrid_event_dated_2001_ahead_or_not_a_time_is_refused(
    workspace: Workspace,
    outbox: Path,
    api: httpx.Client,
    sendgrid: SendGridSigner,
    timestamp: str,
    why: str,
) -> None:
    """Verify a correctly signed SendGrid complaint whose signed timestamp is from 2001, older
    than the max age, an hour ahead, or not a finite Unix time is refused, changing nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    before = snapshot(workspace)
    body = sendgrid_spam(email, ids[email])
    refused = api.post(
        "/webhooks/sendgrid", content=body, headers=sendgrid.headers(body, dated(timestamp, "unix"))
    )
    assert refused.status_code == 403
    assert why in refused.json()["detail"]
    assert snapshot(workspace) == before


def test_a_replayed_sendgrid_request_is_refused(
    workspace: Workspace,
    outbox: Path,
    api: httpx.Client,
    sendgrid: SendGridSigner,
    outgoing: LoopbackOnly,
) -> None:
    """Verify a valid signed SendGrid request is taken once: sent again (to this app or to a
    new one over the same database) it is refused as a replay and changes nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    body = sendgrid_spam(email, ids[email])
    headers = sendgrid.headers(body)
    taken = api.post("/webhooks/sendgrid", content=body, headers=headers)
    assert taken.status_code == 200 and taken.json() == {"recorded": 1}
    compliance.unsuppress(workspace, email, actor="ann")
    before = snapshot(workspace)
    replayed = api.post("/webhooks/sendgrid", content=body, headers=headers)
    assert replayed.status_code == 403 and "replay" in replayed.json()["detail"]
    with daemon_app(workspace, sendgrid, outgoing) as restarted:
        assert (
            restarted.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 403
        )
    assert snapshot(workspace) == before


# --- Mailgun ----------------------------------------------------------------------------------


def mailgun_failure(email: str, delivery_id: int) -> dict[str, Any]:
    return {
        "event": "failed",
        "severity": "permanent",
        "recipient": email,
        "user-variables": {"outreach-delivery": str(delivery_id)},
    }


def test_a_mailgun_token_replayed_after_a_restart_is_refused(
    workspace: Workspace,
    outbox: Path,
    sendgrid: SendGridSigner,
    outgoing: LoopbackOnly,
    tmp_path: Path,
) -> None:
    """Verify the seen tokens outlive the app: a signed Mailgun bounce is taken by one app;
    after it stops, a new workspace and app over the same database refuse the same request as
    a replay, changing nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    body = mailgun_body(
        MG_KEY, mailgun_failure(email, ids[email]), timestamp=int(time.time()), token="tok-9f2"
    )
    with daemon_app(workspace, sendgrid, outgoing) as first:
        taken = first.post("/webhooks/mailgun", json=body)
        assert taken.status_code == 200 and taken.json() == {"recorded": 1}
    compliance.unsuppress(workspace, email, actor="ann")
    before = snapshot(workspace)

    reopened = open_workspace(make_settings(tmp_path, workspace.settings.database_url))
    try:
        with daemon_app(reopened, sendgrid, outgoing) as restarted:
            replayed = restarted.post("/webhooks/mailgun", json=body)
        assert replayed.status_code == 403 and "replay" in replayed.json()["detail"]
        assert snapshot(reopened) == before
    finally:
        reopened.close()


@pytest.mark.parametrize(
    "timestamp", ["nan", "NaN", "inf", "-inf", "1e999", "", "0x10", "\u0661\u0662\u0663"]
)
def test_a_mailgun_timestamp_that_is_not_a_time_is_refused(
    workspace: Workspace, outbox: Path, api: httpx.Client, timestamp: str
) -> None:
    """Verify a Mailgun request whose HMAC is right but whose timestamp is `nan`, infinite or
    not a Unix time is refused, changing nothing."""
    _, ids = sent_ids(workspace, outbox, 2)
    email = sorted(ids)[0]
    before = snapshot(workspace)
    body = mailgun_body(MG_KEY, mailgun_failure(email, ids[email]), timestamp=timestamp)
    refused = api.post("/webhooks/mailgun", json=body)
    assert refused.status_code == 403, refused.text
    why = "not a Unix time" if timestamp else "lacks signature.timestamp"
    assert why in refused.json()["detail"]
    assert snapshot(workspace) == before
