"""Runs against a real Postfix (Debian's package, a private instance on 127.0.0.1: STARTTLS and
AUTH required through Dovecot, a self-signed certificate, a catch-all Maildir, no relay).

- a non-ASCII recipient's List-Unsubscribe arrives plain ASCII, parses with the standard
  library and its one-click URL unsubscribes exactly that recipient;
- a wrong password costs at most one failed AUTH per mechanism the server offers (in
  Postfix's own log) and pauses the run at once, saying to correct the password;
- the engine trusts the self-signed certificate through its `cafile`, and without it the
  error says how to trust it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.http_api import create_app
from outreach_core.services import compliance
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.asgi_server import serve_asgi
from tests.conftest import wait_for
from tests.postfix_server import MECHANISMS, PostfixServer

UNSUBSCRIBE_BASE = "https://unsubscribe.example.com/unsubscribe"
TEMPLATE = TemplateSource("Hello {{ name }} 🎉", None, "Hello {{ name }}")


def run(ws: Workspace, name: str, engine_url: str, recipients: list[str], **options: object) -> int:
    """Set up a workflow sending to `recipients` through `engine_url`, run it to its end."""
    workflow = services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            "c.csv", ["email", "name"], "email", [{"email": r, "name": "Zoë"} for r in recipients]
        ),
        template=TEMPLATE,
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=True, **options),  # type: ignore[arg-type]
        actor="test",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    return run_id


def arrived(postfix: PostfixServer, delivery_ids: set[int]) -> dict[int, EmailMessage]:
    """The delivered messages of these deliveries, by delivery id, once all are in."""
    found: dict[int, EmailMessage] = {}

    def all_in() -> bool:
        found.clear()
        for message in postfix.delivered():
            delivery = int(str(message.get("X-Outreach-Delivery", "0")))
            if delivery in delivery_ids:
                found[delivery] = message
        return set(found) == delivery_ids

    wait_for(all_in, what=f"deliveries {sorted(delivery_ids)} in the Maildir", timeout=30)
    return found


@pytest.fixture
def one_click(sqlite_workspace: Workspace) -> Iterator[httpx.Client]:
    """The daemon's HTTP face over the workspace, served on loopback."""
    app = create_app(sqlite_workspace, api_token=None)
    with serve_asgi(app) as base, httpx.Client(base_url=base) as client:
        yield client


def test_non_ascii_recipient_gets_an_ascii_list_unsubscribe_that_unsubscribes_them(
    sqlite_workspace: Workspace, postfix: PostfixServer, one_click: httpx.Client
) -> None:
    """Verify through Postfix (SMTPUTF8): the message to `zoë@…` carries List-Unsubscribe as
    plain ASCII (no encoded word) that the standard library parses into the https URL and the
    mailto; the URL's address is the recipient, its token theirs, and POSTing the one-click to
    the daemon suppresses exactly that address."""
    ws = sqlite_workspace
    recipients = ["zoë@example.org", "ann@example.org"]
    run_id = run(ws, "utf8", postfix.url(cafile=str(postfix.cert)), recipients,
                 unsubscribe_base_url=UNSUBSCRIBE_BASE,
                 unsubscribe_mailto="unsub@example.com")  # fmt: skip

    with ws.db.connect() as conn:
        ledger = {d.email: d for d in deliveries.list_deliveries(conn, run_id)}
    assert {d.status for d in ledger.values()} == {DeliveryStatus.SENT}
    messages = arrived(postfix, {d.id for d in ledger.values()})
    zoe = messages[ledger["zoë@example.org"].id]

    header = str(zoe["List-Unsubscribe"])
    assert header.isascii() and "=?" not in header
    assert zoe["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    uris = re.findall(r"<([^<>]+)>", header)
    assert [u.split(":")[0] for u in uris] == ["https", "mailto"]
    url = urlsplit(uris[0])
    query = parse_qs(url.query)
    assert query["email"] == ["zoë@example.org"] and "%C3%AB" in url.query
    assert compliance.token_is_valid(ws, "zoë@example.org", query["token"][0])
    assert not compliance.token_is_valid(ws, "ann@example.org", query["token"][0])

    answer = one_click.post(f"{url.path}?{url.query}", content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 200
    suppressed = {s.email_normalized: s.reason for s in compliance.list_suppressions(ws)}
    assert suppressed == {"zoë@example.org": "unsubscribed"}


def test_wrong_password_costs_one_failed_login_and_pauses_the_run_at_once(
    sqlite_workspace: Workspace, postfix: PostfixServer
) -> None:
    """Verify a wrong password with four concurrent sends: Postfix logs at most one failed AUTH
    per mechanism it offers (one, in fact: a 535 is not tried with another mechanism), one
    connection in all, and the run is PAUSED at once with every row still pending and a reason
    saying to correct the engine's password."""
    before = postfix.log_text()
    recipients = [f"person{n}@example.org" for n in range(12)]
    run_id = run(sqlite_workspace, "wrong", postfix.url(password="not-the-password",
                 cafile=str(postfix.cert)), recipients, concurrency=4, batch_size=8)  # fmt: skip

    def new_lines() -> list[str]:
        return postfix.log_text()[len(before) :].splitlines()

    # Postfix logs through postlogd: wait until the session's end is in the log
    wait_for(lambda: any("disconnect from" in line for line in new_lines()),
             what="the end of the refused session in Postfix's log")  # fmt: skip
    failed = [line for line in new_lines() if "authentication failed" in line]
    connections = [line for line in new_lines() if "connect from" in line and "dis" not in line]
    assert 1 <= len(failed) <= len(MECHANISMS) and len(connections) == 1, new_lines()
    assert len(failed) == 1

    summary = services.run_summary(sqlite_workspace, run_id)
    assert summary.run.status is RunStatus.PAUSED
    reason = summary.run.status_reason or ""
    assert "authentication failed (535)" in reason
    assert "correct the password in the engine URL" in reason
    assert "not-the-password" not in reason and postfix.password not in reason
    with sqlite_workspace.db.connect() as conn:
        rows = deliveries.list_deliveries(conn, run_id)
    assert {d.status for d in rows} == {DeliveryStatus.PENDING}
    assert sum(d.attempts for d in rows) == 0


def test_the_engine_trusts_the_self_signed_certificate_through_its_cafile(
    sqlite_workspace: Workspace, postfix: PostfixServer
) -> None:
    """Verify without `cafile` the run pauses on the untrusted certificate, before any login,
    with an error saying how to trust it; with `cafile` naming the certificate it sends."""
    before = postfix.log_text()
    untrusted = run(sqlite_workspace, "untrusted", postfix.url(), ["ann@example.org"])
    summary = services.run_summary(sqlite_workspace, untrusted)
    reason = summary.run.status_reason or ""
    assert summary.run.status is RunStatus.PAUSED
    assert "certificate is not trusted" in reason and "self-signed certificate" in reason
    assert "add ?cafile=/path/to/ca.pem to the engine URL" in reason
    assert "authentication failed" not in postfix.log_text()[len(before) :]

    # plaintext to a server requiring STARTTLS pauses the run (no recipient fails): with a
    # user there is no AUTH to log in with, without one the server's 530 says why
    for name, url, said in [
        ("plain-user", postfix.url(tls="none"), "the server offers no login (AUTH) before TLS"),
        ("plain", f"smtp://127.0.0.1:{postfix.port}?tls=none", "530 5.7.0 Must issue a STARTTLS"),
    ]:
        summary = services.run_summary(
            sqlite_workspace, run(sqlite_workspace, name, url, [f"{name}@example.org"])
        )
        assert summary.run.status is RunStatus.PAUSED and summary.counts.failed == 0
        assert said in (summary.run.status_reason or "")

    trusted = run(sqlite_workspace, "trusted", postfix.url(cafile=str(postfix.cert)),
                  ["bob@example.org"])  # fmt: skip
    summary = services.run_summary(sqlite_workspace, trusted)
    assert (summary.run.status, summary.counts.sent) == (RunStatus.COMPLETED, 1)
    with sqlite_workspace.db.connect() as conn:
        (row,) = deliveries.list_deliveries(conn, trusted)
    message = arrived(postfix, {row.id})[row.id]
    assert message["To"] == "bob@example.org"
