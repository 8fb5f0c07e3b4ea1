"""The Dry run and Audiences pages under AppTest with the loopback DNS server: the
`mx_unresolvable` and `private_address` statuses, their reasons and the `private_address` flag
as the dashboard shows them, and `.test` addresses with and without OUTREACH_TEST_ENVIRONMENT."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from tests.dns_server import DnsServer
from tests.e2e.dashboard import HOME, open_test_workspace

ROWS = (
    b"email,name\n"
    b"ann@mx-ok.example,Ann\n"
    b"bob@mx-nxdomain.example,Bob\n"
    b"cy@mx-no-address.example,Cy\n"
    b"eve@mx-private.example,Eve\n"
    b"ivy@staging.test,Ivy\n"
)


@pytest.fixture
def dns_env(data_dir: Path, dns_server: DnsServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's resolver asks the loopback DNS server with the test zones."""
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", dns_server.nameserver)
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "0.5")
    return data_dir


def open_page(script: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(script).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def dry_run_table(data_dir: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Import ROWS as an audience (straight into the store: the page's import is what the
    test-environment test checks), run the Dry run page on it: metrics and table records."""
    ws = open_test_workspace(data_dir)
    try:
        services.import_audience(
            ws, parse_csv(ROWS, source="people.csv"), name="people", actor="test"
        )
    finally:
        ws.close()
    at = open_page("pages/dry_run.py")
    at.selectbox(key="dry_target").set_value("Audience: people").run()
    at.button(key="dry_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    return metrics, at.dataframe[0].value.to_dict("records")


def test_dry_run_page_shows_unreachable_mail_hosts_with_their_reasons(dns_env: Path) -> None:
    """Verify the counts name mx_unresolvable and private_address, and each row's reason says
    which host failed and how."""
    metrics, records = dry_run_table(dns_env)
    assert metrics["valid"] == "1"
    assert metrics["mx_unresolvable"] == "2"
    assert metrics["private_address"] == "1"
    assert metrics["invalid_syntax"] == "1"
    by_email = {r["email"]: r for r in records}
    assert by_email["bob@mx-nxdomain.example"]["reason"] == (
        "MX host gone.mail.example does not exist (NXDOMAIN): no server can receive the mail"
    )
    assert by_email["cy@mx-no-address.example"]["reason"].startswith(
        "MX host bare.mail.example has no A/AAAA record"
    )
    eve = by_email["eve@mx-private.example"]
    assert eve["status"] == "private_address"
    assert "10.1.2.3 (private)" in eve["reason"]
    assert eve["mx_host"] == "private.mail.example"


def test_dry_run_page_in_a_test_environment_flags_private_hosts(
    dns_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify with OUTREACH_TEST_ENVIRONMENT=true the `.test` row and the private-host row are
    valid, flagged private_address; the unresolvable rows stay skipped."""
    monkeypatch.setenv("OUTREACH_TEST_ENVIRONMENT", "true")
    metrics, records = dry_run_table(dns_env)
    assert metrics["valid"] == "3" and metrics["mx_unresolvable"] == "2"
    assert "private_address" not in metrics  # a flag here, not a status
    flags = {r["email"]: (r["status"], r["flags"]) for r in records}
    assert flags["eve@mx-private.example"] == ("valid", "private_address")
    assert flags["ivy@staging.test"] == ("valid", "private_address")
    assert flags["ann@mx-ok.example"] == ("valid", "")


@pytest.mark.parametrize("test_env", [False, True])
def test_audiences_page_imports_test_addresses_only_in_a_test_environment(
    dns_env: Path, monkeypatch: pytest.MonkeyPatch, test_env: bool
) -> None:
    """Verify an upload's `.test` row is rejected with the special-use reason by default and
    imported with OUTREACH_TEST_ENVIRONMENT=true."""
    if test_env:
        monkeypatch.setenv("OUTREACH_TEST_ENVIRONMENT", "true")
    at = open_page("pages/audiences.py")
    at.file_uploader(key="upload").upload("people.csv", ROWS, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    if test_env:
        assert (metrics["Imported"], metrics["Rejected"]) == ("5", "0")
        return
    assert (metrics["Imported"], metrics["Rejected"]) == ("4", "1")
    [rejected] = at.dataframe[1].value.to_dict("records")
    assert rejected["email"] == "ivy@staging.test"
    assert "special-use or reserved name" in rejected["reason"]
