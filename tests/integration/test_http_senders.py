"""SendGrid and Mailgun against loopback servers that answer as their docs say.

Every documented answer (success, 400, 401, 429 with a reset header, 500, a dropped answer,
a refused connection) lands in its error class, and a run's ledger records the outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders import open_sender
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.message import DELIVERY_HEADER, Sender, build_message
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import Rendered, TemplateSource
from outreach_core.errors import SendError, SendErrorKind
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from http_providers import (
    Answer,
    FakeMailgun,
    FakeProvider,
    FakeSendGrid,
    mailgun_error,
    sendgrid_error,
)
from smtp_server import free_port

KEY = "SG.test-key-0123456789"
RENDERED = Rendered(subject="Hello", html="<p>Hello</p>", text="Hello")


def outgoing(recipient: str, delivery_id: int = 7) -> Any:
    return build_message(
        RENDERED,
        sender=Sender("team@example.com", "Team"),
        recipient=recipient,
        delivery_id=delivery_id,
        now=__import__("datetime").datetime.now(__import__("datetime").UTC),
    )


def send_once(url: str, recipient: str) -> Any:
    async def go() -> Any:
        async with open_sender(url, concurrency=2) as sender:
            return await sender.send(outgoing(recipient))

    return asyncio.run(go())


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with FakeSendGrid(KEY) as fake:
        yield fake


@pytest.fixture
def mailgun() -> Iterator[FakeMailgun]:
    with FakeMailgun(KEY) as fake:
        yield fake


def sendgrid_url(fake: FakeProvider, key: str = KEY) -> str:
    return f"sendgrid://{key}@?endpoint={fake.endpoint}"


def mailgun_url(fake: FakeProvider, key: str = KEY) -> str:
    return f"mailgun://{key}@mg.example.com?endpoint={fake.endpoint}"


RESET_IN = 7


def sendgrid_answers() -> list[tuple[str, Answer, SendErrorKind]]:
    reset = str(int(time.time()) + RESET_IN)
    return [
        ("400", sendgrid_error(400, "Does not contain a valid address."), SendErrorKind.PERMANENT),
        ("413", sendgrid_error(413, "Payload Too Large"), SendErrorKind.PERMANENT),
        ("credits", sendgrid_error(401, "Maximum credits exceeded"), SendErrorKind.ENGINE),
        ("residency", sendgrid_error(451, "data residency"), SendErrorKind.ENGINE),
        (
            "429",
            sendgrid_error(429, "too many requests", **{"X-RateLimit-Reset": reset}),
            SendErrorKind.TRANSIENT,
        ),
        ("500", sendgrid_error(500, "internal error"), SendErrorKind.AMBIGUOUS),
        ("503", Answer(503, b"<html>unavailable</html>"), SendErrorKind.AMBIGUOUS),
        ("drop", Answer(drop=True), SendErrorKind.AMBIGUOUS),
    ]


@pytest.mark.parametrize("case", [c[0] for c in sendgrid_answers()])
def test_sendgrid_answer_lands_in_its_documented_class(sendgrid: FakeSendGrid, case: str) -> None:
    """Verify each SendGrid answer raises a SendError of the class its docs imply."""
    _, answer, kind = next(c for c in sendgrid_answers() if c[0] == case)
    sendgrid.script["x@example.org"] = [answer]
    with pytest.raises(SendError) as caught:
        send_once(sendgrid_url(sendgrid), "x@example.org")
    assert caught.value.kind is kind
    assert KEY not in str(caught.value)
    if case == "429":
        assert caught.value.retry_after is not None
        assert RESET_IN - 2 <= caught.value.retry_after <= RESET_IN


def test_sendgrid_success_carries_our_id_and_returns_theirs(sendgrid: FakeSendGrid) -> None:
    """Verify a 202 returns X-Message-Id and the request carries custom_args and our header."""
    result = send_once(sendgrid_url(sendgrid), "ann@example.org")
    assert result.provider_message_id == "sg-1"
    body = sendgrid.seen[0].fields
    assert body["custom_args"] == {"outreach_delivery": "7"}
    assert body["headers"][DELIVERY_HEADER] == "7"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["from"] == {"email": "team@example.com", "name": "Team"}


def test_sendgrid_bad_key_is_an_engine_error(sendgrid: FakeSendGrid) -> None:
    """Verify a wrong key gets SendGrid's 401 and stops the engine, without echoing the key."""
    with pytest.raises(SendError) as caught:
        send_once(sendgrid_url(sendgrid, key="SG.wrong"), "x@example.org")
    assert caught.value.kind is SendErrorKind.ENGINE and caught.value.code == 401
    assert "SG.wrong" not in str(caught.value)


def test_refused_connection_is_transient() -> None:
    """Verify nothing listening on the endpoint means "not sent": transient."""
    url = f"sendgrid://{KEY}@?endpoint=http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError) as caught:
        send_once(url, "x@example.org")
    assert caught.value.kind is SendErrorKind.TRANSIENT


def mailgun_answers() -> list[tuple[str, Answer, SendErrorKind]]:
    return [
        ("400", mailgun_error(400, "'to' parameter is not a valid address"), SendErrorKind.PERMANENT),
        ("402", mailgun_error(402, "Request failed"), SendErrorKind.PERMANENT),
        (
            "420",
            mailgun_error(420, "Domain sending limit reached, try again after Sun, 30 Nov 2026"),
            SendErrorKind.ENGINE,
        ),
        ("429", mailgun_error(429, "Too many requests", **{"Retry-After": "3"}), SendErrorKind.TRANSIENT),
        ("500", Answer(500, b"Internal Server Error"), SendErrorKind.AMBIGUOUS),
        ("drop", Answer(drop=True), SendErrorKind.AMBIGUOUS),
    ]  # fmt: skip


@pytest.mark.parametrize("case", [c[0] for c in mailgun_answers()])
def test_mailgun_answer_lands_in_its_documented_class(mailgun: FakeMailgun, case: str) -> None:
    """Verify each Mailgun answer raises a SendError of the class its docs imply."""
    _, answer, kind = next(c for c in mailgun_answers() if c[0] == case)
    mailgun.script["x@example.org"] = [answer]
    with pytest.raises(SendError) as caught:
        send_once(mailgun_url(mailgun), "x@example.org")
    assert caught.value.kind is kind
    if case == "429":
        assert caught.value.retry_after == 3.0


def test_mailgun_sends_our_mime_with_the_delivery_variable(mailgun: FakeMailgun) -> None:
    """Verify messages.mime gets our MIME message, `to` and `v:outreach-delivery`; id kept."""
    result = send_once(mailgun_url(mailgun), "ann@example.org")
    assert result.provider_message_id == "<20261129.1@mg.example.com>"
    fields = mailgun.seen[0].fields
    assert fields["v:outreach-delivery"] == b"7"
    assert f"{DELIVERY_HEADER}: 7".encode() in fields["message"]
    assert mailgun.seen[0].path == "/v3/mg.example.com/messages.mime"


def test_mailgun_plain_text_401_is_an_engine_error(mailgun: FakeMailgun) -> None:
    """Verify Mailgun's non-JSON 401 is read without crashing and stops the engine."""
    with pytest.raises(SendError) as caught:
        send_once(mailgun_url(mailgun, key="key-wrong"), "x@example.org")
    assert caught.value.kind is SendErrorKind.ENGINE
    assert "Forbidden" in str(caught.value) and "key-wrong" not in str(caught.value)


# --- through a run: the ledger shows each answer ---------------------------------------------

ROWS = ["ok1", "ok2", "bad", "limited", "boom", "lost"]


def seed(ws: Workspace, url: str) -> int:
    workflow = services.setup_workflow(
        ws,
        name="api",
        parsed=ParsedFile(
            "contacts.csv",
            ["email", "name"],
            "email",
            [{"email": f"{r}@example.org", "name": r} for r in ROWS],
        ),
        template=TemplateSource("Hi {{ name }}", "<p>Hi {{ name }}</p>", "Hi {{ name }}"),
        engine_url=url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, concurrency=3, batch_size=4, max_attempts=3),
        actor="test",
    )
    return services.queue_run(ws, workflow.id, trigger="test", actor="test")


def ledger(ws: Workspace, run_id: int) -> dict[str, Any]:
    with ws.db.connect() as conn:
        return {d.email.split("@")[0]: d for d in deliveries.list_deliveries(conn, run_id)}


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_run_records_each_provider_answer_in_the_ledger(
    workspace: Workspace, sendgrid: FakeSendGrid, mailgun: FakeMailgun, provider: str
) -> None:
    """Verify a run over an API engine: 2xx sent with the provider id, 400 failed, 429 retried
    then sent, 500 and a dropped answer `unknown` and not retried."""
    fake: FakeProvider = sendgrid if provider == "sendgrid" else mailgun
    error = sendgrid_error if provider == "sendgrid" else mailgun_error
    now = str(int(time.time()))
    fake.script = {
        "bad@example.org": [error(400, "invalid address")],
        "limited@example.org": [error(429, "too many requests", **{"X-RateLimit-Reset": now})],
        "boom@example.org": [error(500, "internal error")],
        "lost@example.org": [Answer(drop=True)],
    }
    url = sendgrid_url(fake) if provider == "sendgrid" else mailgun_url(fake)
    run_id = seed(workspace, url)

    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    rows = ledger(workspace, run_id)
    status = {name: d.status for name, d in rows.items()}
    assert status == {
        "ok1": DeliveryStatus.SENT,
        "ok2": DeliveryStatus.SENT,
        "bad": DeliveryStatus.FAILED,
        "limited": DeliveryStatus.SENT,
        "boom": DeliveryStatus.UNKNOWN,
        "lost": DeliveryStatus.UNKNOWN,
    }
    assert {n: rows[n].error_kind for n in ("bad", "boom", "lost")} == {
        "bad": "permanent",
        "boom": "ambiguous",
        "lost": "ambiguous",
    }
    assert rows["limited"].attempts == 2
    assert all(rows[n].provider_message_id for n in ("ok1", "ok2", "limited"))
    assert {r: fake.sent_to(f"{r}@example.org") for r in ROWS} == {
        "ok1": 1, "ok2": 1, "bad": 1, "limited": 2, "boom": 1, "lost": 1,
    }  # fmt: skip
    with workspace.db.connect() as conn:
        counts = deliveries.counts(conn, run_id)
    assert (counts.sent, counts.failed, counts.unknown) == (3, 1, 2)


def test_run_pauses_with_the_reason_when_the_key_is_refused(
    sqlite_workspace: Workspace, sendgrid: FakeSendGrid
) -> None:
    """Verify a 401 pauses the run (reason stated) and leaves the recipients pending."""
    run_id = seed(sqlite_workspace, sendgrid_url(sendgrid, key="SG.revoked"))

    run = run_to_end(sqlite_workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.PAUSED
    assert "HTTP 401" in (run.status_reason or "") and "SG.revoked" not in run.status_reason
    statuses = {d.status for d in ledger(sqlite_workspace, run_id).values()}
    assert statuses == {DeliveryStatus.PENDING}


def test_engine_urls_are_masked_for_display(tmp_path: Path) -> None:
    """Verify the display form of every API URL hides key and secret."""
    from outreach_core.adapters.senders import parse_engine_url

    shown = [
        parse_engine_url(u).display
        for u in (
            "sendgrid://SG.secret@?region=eu",
            "mailgun://key-secret@mg.example.com?region=eu",
            "ses://AKIAEXAMPLE:sec%2Fret@eu-west-1",
        )
    ]
    assert shown == [
        "sendgrid://***@?region=eu",
        "mailgun://***@mg.example.com?region=eu",
        "ses://AKIAEXAMPLE:***@eu-west-1",
    ]
    assert not any("secret" in s or "sec%2Fret" in s for s in shown)
    assert json.dumps(shown)  # plain strings


def check_once(url: str) -> str:
    async def go() -> str:
        async with open_sender(url, concurrency=1) as sender:
            return await sender.check()

    return asyncio.run(go())


def test_connection_checks_accept_good_keys(sendgrid: FakeSendGrid, mailgun: FakeMailgun) -> None:
    """Verify each check reads its provider's documented endpoint and sends nothing."""
    assert "mail.send allowed" in check_once(sendgrid_url(sendgrid))
    assert "key and domain accepted" in check_once(mailgun_url(mailgun))
    assert [s.path for s in sendgrid.seen + mailgun.seen] == []


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_connection_check_with_a_refused_key_is_an_engine_error_without_the_key(
    sendgrid: FakeSendGrid, mailgun: FakeMailgun, provider: str
) -> None:
    """Verify a wrong key makes the check fail as an engine error that never echoes the key."""
    url = (
        sendgrid_url(sendgrid, key="wrong-k3y")
        if provider == "sendgrid"
        else (mailgun_url(mailgun, key="wrong-k3y"))
    )
    with pytest.raises(SendError) as caught:
        check_once(url)
    assert caught.value.kind is SendErrorKind.ENGINE
    assert "wrong-k3y" not in str(caught.value)


def test_connection_check_of_an_unreachable_provider_is_an_engine_error() -> None:
    """Verify a check that reaches no server says it cannot connect (engine-level)."""
    url = f"mailgun://{KEY}@mg.example.com?endpoint=http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError, match="cannot connect") as caught:
        check_once(url)
    assert caught.value.kind is SendErrorKind.ENGINE
    assert KEY not in str(caught.value)
