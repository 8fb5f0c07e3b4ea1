"""The pure decisions about a domain's mail hosts: which addresses are public, which verdict
the A/AAAA answers give, whether its rows are sent, and the test-environment setting's
effect on addresses and flags. No server."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from outreach_core.adapters.dns import DomainChecker, make_resolver
from outreach_core.adapters.settings import load_settings
from outreach_core.domain.address_checks import check_rows
from outreach_core.domain.dns_waits import DnsAction, decide
from outreach_core.domain.mx import (
    MAX_REASON,
    DomainResult,
    DomainStatus,
    HostLookup,
    address_scope,
    is_public,
    mx_verdict,
    receives_mail,
)
from outreach_core.domain.states import DnsWaitPolicy, SkipReason
from outreach_core.domain.validation import check_syntax

PUBLIC = "1.2.3.4"


@pytest.mark.parametrize(
    ("address", "scope"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.2.1", "reserved"),
        ("198.51.100.7", "reserved"),
        ("203.0.113.9", "reserved"),
        ("100.64.0.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("240.0.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
def test_addresses_that_the_internet_cannot_reach_are_named(address: str, scope: str) -> None:
    """Verify private, loopback, link-local, multicast, unspecified and reserved ranges (an
    IPv4-mapped IPv6 address as its IPv4 address) are classified and not public."""
    assert address_scope(address) == scope
    assert not is_public(address)


@pytest.mark.parametrize(
    "address", ["1.2.3.4", "8.8.8.8", "172.32.0.1", "11.0.0.1", "2a00:1450::1", "::ffff:1.2.3.4"]
)
def test_public_addresses_have_no_scope(address: str) -> None:
    """Verify routable addresses (including the neighbours of the private ranges) are public."""
    assert address_scope(address) is None
    assert is_public(address)


def test_the_first_host_with_a_public_address_makes_the_domain_valid() -> None:
    """Verify an unresolvable or private most-preferred host does not spoil a later good one,
    and the good one is the mx_host."""
    hosts = [
        HostLookup("gone.example", nxdomain=True),
        HostLookup("inner.example", ("10.0.0.1",)),
        HostLookup("mx.example", ("192.168.0.9", PUBLIC)),
    ]
    assert mx_verdict("d.example", hosts) == DomainResult(
        "d.example", DomainStatus.VALID, "mx.example"
    )


def test_hosts_without_any_address_are_mx_unresolvable_naming_each() -> None:
    """Verify NXDOMAIN hosts and hosts with neither A nor AAAA give mx_unresolvable with a
    reason naming each host and why."""
    verdict = mx_verdict(
        "d.example",
        [HostLookup("gone.example", nxdomain=True), HostLookup("bare.example")],
    )
    assert verdict.status is DomainStatus.MX_UNRESOLVABLE
    assert verdict.mx_host == "gone.example"
    assert verdict.reason == (
        "MX host gone.example does not exist (NXDOMAIN); bare.example has no A/AAAA record: "
        "no server can receive the mail"
    )


def test_hosts_with_only_private_addresses_are_private_address() -> None:
    """Verify private/loopback-only hosts give private_address with the addresses named."""
    verdict = mx_verdict(
        "d.example",
        [HostLookup("bare.example"), HostLookup("lo.example", ("127.0.0.1", "::1"))],
    )
    assert (verdict.status, verdict.mx_host) == (DomainStatus.PRIVATE_ADDRESS, "lo.example")
    assert verdict.reason.endswith("127.0.0.1 (loopback), ::1 (loopback)")


def test_a_failed_host_lookup_is_unknown_unless_another_host_is_good() -> None:
    """Verify a timed-out A/AAAA lookup makes the domain dns_error (never invalid), even when
    the other hosts are unresolvable or private; a good host still wins."""
    timeout = HostLookup("slow.example", error="DNS timeout")
    for others in (
        [],
        [HostLookup("gone.example", nxdomain=True)],
        [HostLookup("p", ("10.0.0.1",))],
    ):
        verdict = mx_verdict("d.example", [*others, timeout])
        assert verdict.status is DomainStatus.DNS_ERROR
        assert verdict.reason == "DNS timeout looking up MX host slow.example"
    good = HostLookup("mx.example", (PUBLIC,))
    assert mx_verdict("d.example", [timeout, good]).status is DomainStatus.VALID


def test_the_implicit_mx_gets_the_same_checks() -> None:
    """Verify the domain's own A/AAAA (no MX): public -> valid naming the record type, private
    only -> private_address, none -> no_mx, a timeout -> dns_error."""

    def implicit(lookup: HostLookup) -> DomainResult:
        return mx_verdict("d.example", [lookup], implicit=True)

    assert implicit(HostLookup("d.example", (PUBLIC,))) == DomainResult(
        "d.example", DomainStatus.VALID, "d.example", "no MX, A record"
    )
    assert implicit(HostLookup("d.example", ("2a00:1450::1",))).reason == "no MX, AAAA record"
    private = implicit(HostLookup("d.example", ("192.168.1.2",)))
    assert private.status is DomainStatus.PRIVATE_ADDRESS
    assert private.reason.startswith("no MX, and its A/AAAA records point only")
    assert implicit(HostLookup("d.example")) == DomainResult(
        "d.example", DomainStatus.NO_MX, None, "no MX and no A/AAAA record"
    )
    assert implicit(HostLookup("d.example", error="DNS timeout")) == DomainResult(
        "d.example", DomainStatus.DNS_ERROR, None, "DNS timeout"
    )


@pytest.mark.parametrize("status", list(DomainStatus))
def test_only_valid_is_sent_and_private_address_too_in_a_test_environment(
    status: DomainStatus,
) -> None:
    """Verify which verdicts send rows, with and without the test environment; every verdict
    that is not sent has a skip reason of the same word."""
    assert receives_mail(status) is (status is DomainStatus.VALID)
    assert receives_mail(status, test_environment=True) is (
        status in (DomainStatus.VALID, DomainStatus.PRIVATE_ADDRESS)
    )
    if status is not DomainStatus.VALID:
        assert SkipReason(status.value).value == status.value


def test_waiting_rows_follow_the_same_rule_after_a_new_lookup() -> None:
    """Verify a waiting row whose domain turns out private is skipped, unless in a test
    environment, and an unresolvable one is skipped with the reason."""
    private = DomainResult("p.example", DomainStatus.PRIVATE_ADDRESS, "lo", "MX host lo points…")
    gone = DomainResult("g.example", DomainStatus.MX_UNRESOLVABLE, "x", "MX host x does not…")
    when = {"policy": DnsWaitPolicy.WAIT, "waited": timedelta(0), "wait_hours": 24.0}
    assert decide(private, **when).action is DnsAction.SKIP
    assert decide(private, **when).reason == "private_address: MX host lo points…"
    assert decide(private, **when, test_environment=True).action is DnsAction.SEND
    assert decide(gone, **when, test_environment=True).reason == (
        "mx_unresolvable: MX host x does not…"
    )


@pytest.mark.parametrize("raw", ["ann@staging.test", "ann@test", "Ann@Mail.Staging.TEST"])
def test_test_domains_pass_only_in_a_test_environment(raw: str) -> None:
    """Verify `.test` addresses are refused by default and accepted with the setting (both
    the fast path and email-validator's)."""
    refused = check_syntax(raw)
    assert not refused.ok and refused.error
    accepted = check_syntax(raw, test_environment=True)
    assert accepted.ok and accepted.key == raw.lower()


@pytest.mark.parametrize("raw", ["ann@box.local", "ann@box.localhost", "ann@box.invalid"])
def test_other_special_use_names_stay_refused_in_a_test_environment(raw: str) -> None:
    """Verify the setting opens `.test` only: `.local`, `.localhost`, `.invalid` stay refused."""
    assert not check_syntax(raw, test_environment=True).ok


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify OUTREACH_TEST_ENVIRONMENT is off by default and read as a boolean."""
    monkeypatch.delenv("OUTREACH_TEST_ENVIRONMENT", raising=False)
    assert load_settings(_env_file=None).test_environment is False
    monkeypatch.setenv("OUTREACH_TEST_ENVIRONMENT", "true")
    assert load_settings(_env_file=None).test_environment is True


def rows_with(known: dict[str, DomainResult], emails: list[str], *, test_env: bool):
    """The pre-flight's rows with these verdicts already known (no lookup is made)."""

    async def run():
        checker = DomainChecker(make_resolver([("127.0.0.1", 9)], 0.1), known=known)
        return await check_rows(emails, checker=checker, test_environment=test_env)

    return asyncio.run(run()).rows


def test_private_address_is_a_status_and_in_a_test_environment_a_flag() -> None:
    """Verify a private_address domain's row is skipped with that status by default, and in
    a test environment is valid with the `private_address` flag (next to `role`)."""
    known = {
        "p.example": DomainResult("p.example", DomainStatus.PRIVATE_ADDRESS, "lo", "why"),
        "staging.test": DomainResult("staging.test", DomainStatus.VALID, "mx"),
    }
    emails = ["info@p.example", "ann@staging.test"]
    default = rows_with(known, emails, test_env=False)
    assert [(r.status, r.flags) for r in default] == [
        ("private_address", "role"),
        ("invalid_syntax", ""),
    ]
    assert default[0].reason == "why"
    staging = rows_with(known, emails, test_env=True)
    assert [(r.status, r.flags) for r in staging] == [
        ("valid", "role private_address"),
        ("valid", ""),
    ]


def test_reasons_stay_short_however_many_and_long_the_hosts() -> None:
    """Verify ten unresolvable hosts with 250-character names give a reason of at most
    MAX_REASON characters naming three of them and counting the rest, and a private host
    with a long name is cut too (the DNS cache keeps 500)."""
    long = [f"{'h' * 60}.{'x' * 60}.{'y' * 60}.{'z' * 60}.n{n}.example" for n in range(10)]
    verdict = mx_verdict("d.example", [HostLookup(name) for name in long])
    assert verdict.status is DomainStatus.MX_UNRESOLVABLE
    assert len(verdict.reason) <= MAX_REASON
    short = mx_verdict("d.example", [HostLookup(f"mx{n}.example") for n in range(5)])
    assert short.reason == (
        "MX host mx0.example has no A/AAAA record; mx1.example has no A/AAAA record; "
        "mx2.example has no A/AAAA record; and 2 more: no server can receive the mail"
    )
    addresses = tuple(f"fd00:1111:2222:3333:4444:5555:6666:{n:04x}" for n in range(8))
    private = mx_verdict("d.example", [HostLookup(long[0], addresses)])
    assert len(private.reason) <= MAX_REASON and private.reason.endswith("…")
