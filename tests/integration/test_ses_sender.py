"""Amazon SES v2 against moto's server mode on 127.0.0.1: success and `MessageRejected`.

moto does not check signatures, so the SigV4 header is compared with botocore's own signing
of the same request instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders import open_sender
from outreach_core.adapters.senders.ses import SesConfig, signed_headers
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.message import Sender, build_message
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import Rendered, TemplateSource
from outreach_core.errors import SendError, SendErrorKind
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from smtp_server import free_port

ACCESS, SECRET, REGION = "AKIAOUTREACHTEST", "s3cr3t/with+chars", "eu-west-1"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def ses(moto_endpoint: str) -> Iterator[Any]:
    """A boto3 SES v2 client on the moto server, state reset for each test."""
    httpx.post(f"{moto_endpoint}/moto-api/reset")
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id=ACCESS,
        aws_secret_access_key="x",
    )
    yield client


def url(endpoint: str) -> str:
    return f"ses://{ACCESS}:{SECRET.replace('/', '%2F').replace('+', '%2B')}@{REGION}?endpoint={endpoint}"


def outgoing(sender: str, recipient: str) -> Any:
    return build_message(
        Rendered(subject="Hello", html="<p>Hello</p>", text="Hello"),
        sender=Sender(sender, "Team"),
        recipient=recipient,
        delivery_id=11,
        now=datetime.now(UTC),
    )


def send_once(endpoint: str, sender: str, recipient: str) -> Any:
    async def go() -> Any:
        async with open_sender(url(endpoint), concurrency=1) as engine:
            return await engine.send(outgoing(sender, recipient))

    return asyncio.run(go())


def test_unverified_sender_is_message_rejected_and_permanent(moto_endpoint: str, ses: Any) -> None:
    """Verify SES's MessageRejected (sender not verified) is a permanent error naming the type."""
    with pytest.raises(SendError) as caught:
        send_once(moto_endpoint, "nobody@unverified.example", "ann@example.org")
    assert caught.value.kind is SendErrorKind.PERMANENT
    assert "MessageRejected" in str(caught.value)
    assert SECRET not in str(caught.value) and "s3cr3t" not in str(caught.value)


def test_verified_sender_is_accepted_with_a_message_id(moto_endpoint: str, ses: Any) -> None:
    """Verify a verified identity gets 200 and SES's MessageId comes back as the provider id."""
    ses.create_email_identity(EmailIdentity="team@example.com")
    result = send_once(moto_endpoint, "team@example.com", "ann@example.org")
    assert result.provider_message_id


def test_signature_matches_botocore_for_the_same_request() -> None:
    """Verify the Authorization header is botocore's SigV4 for service `ses` and the region."""
    config = SesConfig(ACCESS, SECRET, REGION, "https://email.eu-west-1.amazonaws.com")
    headers = signed_headers(config, "POST", config.endpoint + "/v2/email/outbound-emails", b"{}")
    auth = headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS}/")
    assert f"/{REGION}/ses/aws4_request" in auth
    assert "X-Amz-Date" in headers and SECRET not in auth


def test_run_over_ses_records_sent_and_rejected_in_the_ledger(
    sqlite_workspace: Workspace, moto_endpoint: str, ses: Any
) -> None:
    """Verify a run through moto: a verified sender's messages are sent with SES ids; after the
    identity is gone, the next run's messages are failed as MessageRejected (permanent)."""
    ses.create_email_identity(EmailIdentity="team@example.com")
    workflow = services.setup_workflow(
        sqlite_workspace,
        name="ses",
        parsed=ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"p{i}@example.org"} for i in range(5)]
        ),
        template=TemplateSource("Hi", None, "Hello"),
        engine_url=url(moto_endpoint),
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=2, max_attempts=2, dedupe_window_hours=0),
        actor="test",
    )
    first = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor="test")
    assert (
        run_to_end(sqlite_workspace, first, worker_id=new_worker_id(), stop=StopSignal()).status
        is RunStatus.COMPLETED
    )

    ses.delete_email_identity(EmailIdentity="team@example.com")
    second = services.queue_run(sqlite_workspace, workflow.id, trigger="test", actor="test")
    assert (
        run_to_end(sqlite_workspace, second, worker_id=new_worker_id(), stop=StopSignal()).status
        is RunStatus.COMPLETED
    )

    with sqlite_workspace.db.connect() as conn:
        sent = deliveries.list_deliveries(conn, first)
        rejected = deliveries.list_deliveries(conn, second)
    assert {d.status for d in sent} == {DeliveryStatus.SENT}
    assert len({d.provider_message_id for d in sent}) == 5
    assert {d.status for d in rejected} == {DeliveryStatus.FAILED}
    assert all(
        d.error_kind == "permanent" and "MessageRejected" in (d.reason or "") for d in rejected
    )
    assert all(d.attempts == 1 for d in rejected)
