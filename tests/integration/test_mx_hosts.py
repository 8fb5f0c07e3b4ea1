"""MX answers that cannot receive mail, and staging's `.test` addresses, through the real
validation path (`validate`, the service `dry-run` and `send` use) against the loopback DNS
server: an MX host without an address or that does not exist is `mx_unresolvable`, mail hosts
with only private/loopback addresses are `private_address`, a host whose lookup never answers
is `dns_error` (unknown); `.test` passes only with OUTREACH_TEST_ENVIRONMENT."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.mx import DomainStatus
from outreach_core.services.preflight import check_emails
from tests.dns_server import DnsServer

from conftest import cli_env, run_cli

CONTACTS = (
    "email\n"
    "ann@mx-ok.example\n"
    "bob@mx-no-address.example\n"
    "cy@mx-nxdomain.example\n"
    "dee@mx-second.example\n"
    "eve@mx-private.example\n"
    "fay@mx-loopback.example\n"
    "gus@a-private.example\n"
    "hal@mx-silent-host.example\n"
    "ivy@staging.test\n"
    "jo@a-only.example\n"
)
UNREACHABLE = "only to addresses not reachable from the Internet"
#: email -> (status, reason, mx_host, flags) without the test-environment setting
EXPECTED = {
    "ann@mx-ok.example": ("valid", "", "mx1.mail.example", ""),
    "bob@mx-no-address.example": (
        "mx_unresolvable",
        "MX host bare.mail.example has no A/AAAA record: no server can receive the mail",
        "bare.mail.example",
        "",
    ),
    "cy@mx-nxdomain.example": (
        "mx_unresolvable",
        "MX host gone.mail.example does not exist (NXDOMAIN): no server can receive the mail",
        "gone.mail.example",
        "",
    ),
    "dee@mx-second.example": ("valid", "", "mx2.mail.example", ""),
    "eve@mx-private.example": (
        "private_address",
        f"MX host private.mail.example points {UNREACHABLE}: 10.1.2.3 (private), fe80::1 (link-local)",
        "private.mail.example",
        "",
    ),
    "fay@mx-loopback.example": (
        "private_address",
        f"MX host loopback.mail.example points {UNREACHABLE}: 127.0.0.1 (loopback), ::1 (loopback)",
        "loopback.mail.example",
        "",
    ),
    "gus@a-private.example": (
        "private_address",
        f"no MX, and its A/AAAA records point {UNREACHABLE}: 192.168.1.20 (private), fd00::20 (private)",
        "a-private.example",
        "",
    ),
    "hal@mx-silent-host.example": (
        "dns_error",
        "DNS timeout looking up MX host silent.mail.example",
        "",
        "",
    ),
    "ivy@staging.test": (
        "invalid_syntax",
        "The part after the @-sign is a special-use or reserved name that cannot be used "
        "with email.",
        "",
        "",
    ),
    "jo@a-only.example": ("valid", "no MX, A record", "a-only.example", ""),
}
PRIVATE = {"eve@mx-private.example", "fay@mx-loopback.example", "gus@a-private.example"}


def cli(tmp_path: Path, dns: DnsServer, *args: str, test_env: bool) -> subprocess.CompletedProcess:
    env = cli_env(
        tmp_path,
        OUTREACH_DNS_NAMESERVERS=dns.nameserver,
        OUTREACH_DNS_TIMEOUT="0.5",
        **({"OUTREACH_TEST_ENVIRONMENT": "true"} if test_env else {}),
    )
    return run_cli(tmp_path, *args, env=env)


def validate(
    tmp_path: Path, dns: DnsServer, *, test_env: bool
) -> tuple[dict[str, dict[str, str]], str]:
    """validate's CSV rows by email, and what it printed."""
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS, encoding="utf-8")
    out = tmp_path / f"out-{test_env}.csv"
    done = cli(tmp_path, dns, "validate", str(source), "--out", str(out), test_env=test_env)
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        return {row["email"]: row for row in csv.DictReader(handle)}, done.stdout


def test_validate_gives_mx_unresolvable_and_private_address(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify each MX case's status, reason, mx_host and flags in validate's CSV, and the
    counts line naming the new statuses."""
    rows, printed = validate(tmp_path, dns_server, test_env=False)
    found = {e: (r["status"], r["reason"], r["mx_host"], r["flags"]) for e, r in rows.items()}
    assert found == EXPECTED
    assert (
        "10 rows: valid=3 invalid_syntax=1 mx_unresolvable=2 private_address=3 dns_error=1"
        in printed
    )


def test_test_environment_accepts_test_addresses_and_flags_private_hosts(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify OUTREACH_TEST_ENVIRONMENT=true makes `ivy@staging.test` valid (its mail host is
    on the loopback: flagged private_address) and the private_address domains valid with the
    flag; everything else is as without the setting."""
    rows, _ = validate(tmp_path, dns_server, test_env=True)
    for email, (status, reason, mx_host, _) in EXPECTED.items():
        got = rows[email]
        if email in PRIVATE:
            assert (got["status"], got["flags"]) == ("valid", "private_address"), email
            assert (got["reason"], got["mx_host"]) == (reason, mx_host)
        elif email != "ivy@staging.test":
            assert (got["status"], got["reason"], got["mx_host"]) == (status, reason, mx_host)
    ivy = rows["ivy@staging.test"]
    assert (ivy["status"], ivy["mx_host"], ivy["flags"]) == (
        "valid",
        "loopback.mail.example",
        "private_address",
    )
    assert ivy["email_normalized"] == "ivy@staging.test"


def test_verdicts_are_cached_with_the_new_statuses(
    workspace: Workspace, dns_server: DnsServer
) -> None:
    """Verify the service's pre-flight caches mx_unresolvable and private_address verdicts
    (a second check asks DNS nothing for them), but never the A-lookup timeout (dns_error)."""
    fresh = DnsServer(dns_server.zones).start()
    try:
        workspace.settings.dns_nameservers = fresh.nameserver
        workspace.settings.dns_timeout = 0.3
        emails = ["a@mx-nxdomain.example", "b@mx-private.example", "c@mx-silent-host.example"]
        first = check_emails(workspace, emails)
        assert [first.domains[e.split("@")[1]].status for e in emails] == [
            DomainStatus.MX_UNRESOLVABLE,
            DomainStatus.PRIVATE_ADDRESS,
            DomainStatus.DNS_ERROR,
        ]
        fresh.queries.clear()
        second = check_emails(workspace, emails)
        assert [r.status for r in second.rows] == [r.status for r in first.rows]
        assert [r.reason for r in second.rows] == [r.reason for r in first.rows]
        assert {name for name, _ in fresh.queries} == {
            "mx-silent-host.example",
            "silent.mail.example",
        }
    finally:
        fresh.stop()


def send(tmp_path: Path, dns: DnsServer, *, test_env: bool) -> dict[str, tuple[str, str]]:
    """`send` of four rows to an outbox; the ledger's (status, reason) per address."""
    contacts = tmp_path / f"send-{test_env}.csv"
    contacts.write_text(
        "email\nann@mx-ok.example\neve@mx-private.example\nivy@staging.test\n"
        "cy@mx-nxdomain.example\n",
        encoding="utf-8",
    )
    template = tmp_path / "tpl"
    template.mkdir(exist_ok=True)
    (template / "subject.txt").write_text("Hello\n")
    (template / "body.txt").write_text("Hello {{ recipient.email }}\n")
    outbox = tmp_path / f"outbox-{test_env}"
    done = cli(
        tmp_path,
        dns,
        "send",
        str(contacts),
        "--template",
        str(template),
        "--engine",
        f"outbox://{outbox}",
        "--rate",
        "0",
        test_env=test_env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.splitlines()[0].removeprefix("run: ")
    ledger = tmp_path / f"ledger-{test_env}.csv"
    exported = cli(tmp_path, dns, "export", run_id, "--out", str(ledger), test_env=test_env)
    assert exported.returncode == 0, exported.stderr
    with ledger.open(encoding="utf-8", newline="") as handle:
        by_email = {r["email"]: (r["status"], r["reason"]) for r in csv.DictReader(handle)}
    sent = sorted(p.name.split("-", 1)[1].removesuffix(".eml") for p in message_files(outbox))
    assert sent == sorted(e for e, (status, _) in by_email.items() if status == "sent")
    return by_email


def test_send_skips_unreachable_domains_and_refuses_test_addresses_by_default(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify a run sends to the valid domain only: the private_address, mx_unresolvable and
    `.test` rows are skipped with their reasons."""
    ledger = send(tmp_path, dns_server, test_env=False)
    assert ledger["ann@mx-ok.example"] == ("sent", "")
    assert ledger["eve@mx-private.example"][0] == "skipped"
    assert ledger["eve@mx-private.example"][1].startswith("private_address: MX host private.")
    assert ledger["cy@mx-nxdomain.example"][0] == "skipped"
    assert ledger["cy@mx-nxdomain.example"][1].startswith("mx_unresolvable: MX host gone.")
    assert ledger["ivy@staging.test"][0] == "skipped"
    assert ledger["ivy@staging.test"][1].startswith("invalid_syntax: The part after the @-sign")


def test_send_in_a_test_environment_delivers_test_and_private_domains(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify with OUTREACH_TEST_ENVIRONMENT=true the `.test` and private_address rows are
    sent; a domain no server can receive for is still skipped."""
    ledger = send(tmp_path, dns_server, test_env=True)
    assert {e for e, (status, _) in ledger.items() if status == "sent"} == {
        "ann@mx-ok.example",
        "eve@mx-private.example",
        "ivy@staging.test",
    }
    assert ledger["cy@mx-nxdomain.example"][0] == "skipped"
