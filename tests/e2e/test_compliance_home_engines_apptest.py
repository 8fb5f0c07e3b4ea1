"""Home's complaint-brake block and the Engines page's sender domain check under AppTest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core.adapters.store import deliveries
from outreach_core.domain.models import Feedback
from outreach_core.services import compliance
from tests.dns_server import MX_OK, DnsServer, Zone
from tests.e2e.dashboard import HOME, Demo, send_run


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_home_shows_the_complaint_brake_of_an_engine(demo: Demo) -> None:
    """Verify no block without complaints, and one naming the engine and its rate after one."""
    run_id = send_run(demo.ws, demo.workflow)
    at = start("pages/overview.py")
    assert not [e for e in at.error if "Complaint brake" in e.value]
    with demo.ws.db.connect() as conn:
        sent = [d for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"]
    compliance.record_event(
        demo.ws,
        compliance.ProviderEvent(
            provider="ses",
            feedback=Feedback.COMPLAINED,
            email=sent[0].email,
            delivery_id=sent[0].id,
        ),
    )
    at = start("pages/overview.py")
    [block] = [e.value for e in at.error if "Complaint brake" in e.value]
    assert f"engine Local outbox: 1 complaints in its last {len(sent)} sends" in block
    [reviewed] = [b for b in at.button if b.label.startswith("Complaints of Local outbox")]
    reviewed.click().run()
    assert not [e for e in at.error if "Complaint brake" in e.value]
    assert compliance.braked_engines(demo.ws) == []


@pytest.fixture
def sender_dns(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app asks a loopback DNS server where example.com has SPF and DMARC but no DKIM."""
    server = DnsServer(
        {
            "example.com": Zone(mx=MX_OK.mx, txt=("v=spf1 mx -all",)),
            "_dmarc.example.com": Zone(txt=("v=DMARC1; p=none",)),
        }
    ).start()
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", server.nameserver)
    yield
    server.stop()


@pytest.mark.usefixtures("sender_dns")
def test_engines_page_checks_the_from_domain(demo: Demo) -> None:
    """Verify the domain check: the engine's From domain prefilled, a verdict and a table."""
    at = start("pages/engines.py")
    assert at.text_input(key="domain_check_from").value == "workshops@example.com"
    at.text_input(key="domain_check_selector").input("s1")
    at.button(key="domain_check").click().run()
    assert not at.exception
    assert at.error[-1].value == "example.com: look at DKIM before sending in bulk."
    table = at.dataframe[-1].value.set_index("Record")
    assert table.loc["SPF", "Verdict"] == "ok" and table.loc["DMARC", "Verdict"] == "ok"
    assert table.loc["DKIM", "Verdict"] == "problem"
    assert table.loc["DKIM", "Looked up"] == "s1._domainkey.example.com"
