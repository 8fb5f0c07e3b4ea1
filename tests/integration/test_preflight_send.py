"""The send path runs the pre-flight's DNS step; the DNS verdicts are cached with a TTL.

DNS: the session's loopback server (tests/conftest.py), which serves the test zones and
answers MX for every other name.
"""

from __future__ import annotations

from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.preflight import check_emails
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.dns_server import DnsServer

ROWS = [
    {"email": "ann@mx-ok.example", "name": "Ann"},
    {"email": "bob@null-mx.example", "name": "Bob"},
    {"email": "carl@nxdomain.example", "name": "Carl"},
    {"email": "dana@a-only.example", "name": "Dana"},
]


def send(ws: Workspace, tmp_path: Path, *, skip_mx: bool) -> dict[str, str]:
    """Set up and run a workflow over ROWS; email -> reason word ('' when sent)."""
    workflow = services.setup_workflow(
        ws,
        name=f"wf {skip_mx}",
        parsed=ParsedFile("c.csv", ["email", "name"], "email", ROWS),
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@mx-ok.example",
        from_name="Team",
        options=SendOptions(rate=0, skip_mx=skip_mx),
        actor="test",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    with ws.db.connect() as conn:
        ledger = deliveries.list_deliveries(conn, run_id)
    return {d.email: (d.reason or "").split(":")[0] or d.status.value for d in ledger}


def test_send_skips_rows_whose_domain_cannot_receive_mail(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a run skips null_mx and no_domain rows and sends to MX and A-only domains."""
    assert send(workspace, tmp_path, skip_mx=False) == {
        "ann@mx-ok.example": "sent",
        "bob@null-mx.example": "null_mx",
        "carl@nxdomain.example": "no_domain",
        "dana@a-only.example": "sent",
    }


def test_skip_mx_sends_without_the_dns_step(workspace: Workspace, tmp_path: Path) -> None:
    """Verify skip_mx leaves the DNS verdicts out: every syntactically valid row is sent."""
    assert set(send(workspace, tmp_path, skip_mx=True).values()) == {"sent"}


def test_dns_verdicts_are_cached_until_their_ttl(
    workspace: Workspace, dns_server: DnsServer
) -> None:
    """Verify a second pre-flight asks DNS nothing; with a TTL of 0 it asks again."""
    fresh = DnsServer(dns_server.zones).start()
    try:
        ws = workspace
        ws.settings.dns_nameservers = fresh.nameserver
        emails = ["a@mx-ok.example", "b@null-mx.example", "c@silent.example"]
        ws.settings.dns_timeout = 0.3
        first = check_emails(ws, emails)
        asked = sum(fresh.queries.values())
        second = check_emails(ws, emails)
        assert [r.status for r in second.rows] == [r.status for r in first.rows]
        # only the silent domain (dns_error: unknown, never cached) is asked again
        assert {n for (n, _), c in fresh.queries.items()} == {
            "mx-ok.example",
            "mx1.mail.example",  # mx-ok.example's mail host: its address, looked up once
            "null-mx.example",
            "silent.example",
        }
        assert fresh.queries[("mx1.mail.example", "A")] == 1
        assert second.looked_up == 1
        ws.settings.dns_cache_hours = 0
        check_emails(ws, emails)
        assert fresh.queries[("mx-ok.example", "MX")] == 2
        assert sum(fresh.queries.values()) > asked
    finally:
        fresh.stop()
