"""MX checks against the real DNS server on 127.0.0.1 (tests/dns_server.py): every verdict."""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.resolver
import pytest

from outreach_core.adapters.dns import check_domain, check_domains, make_resolver
from outreach_core.adapters.settings import Settings
from outreach_core.domain.mx import DomainStatus
from outreach_core.domain.states import SkipReason
from outreach_core.services.preflight import check_addresses
from tests.dns_server import DnsServer


def resolver_for(server: DnsServer, timeout: float = 1.0):
    settings = Settings(_env_file=None, OUTREACH_DNS_NAMESERVERS=server.nameserver)
    return make_resolver(settings.nameservers, timeout)


@pytest.mark.parametrize(
    ("domain", "status", "mx_host"),
    [
        ("mx-ok.example", DomainStatus.VALID, "mx1.mail.example"),  # lowest preference wins
        ("a-only.example", DomainStatus.VALID, "a-only.example"),  # implicit MX (RFC 5321)
        ("aaaa-only.example", DomainStatus.VALID, "aaaa-only.example"),
        ("null-mx.example", DomainStatus.NULL_MX, None),  # MX 0 . beats its A record
        ("no-records.example", DomainStatus.NO_MX, None),
        ("nxdomain.example", DomainStatus.NO_DOMAIN, None),
        ("never-registered.example", DomainStatus.NO_DOMAIN, None),
        ("servfail.example", DomainStatus.DNS_ERROR, None),  # unknown, not invalid
        ("slow.example", DomainStatus.VALID, "mx.slow.example"),  # late but within timeout
        ("silent.example", DomainStatus.DNS_ERROR, None),  # never answers
    ],
)
def test_each_dns_outcome_gets_its_verdict(
    dns_server: DnsServer, domain: str, status: DomainStatus, mx_host: str | None
) -> None:
    """Verify MX, implicit MX, null MX, no MX, NXDOMAIN, SERVFAIL, slow and silent names."""
    result = asyncio.run(check_domain(resolver_for(dns_server), domain))
    assert (result.status, result.mx_host) == (status, mx_host)
    assert result.reason or status is DomainStatus.VALID


def test_timeout_shorter_than_a_slow_answer_is_dns_error(dns_server: DnsServer) -> None:
    """Verify a name answering after the timeout is dns_error with reason DNS timeout."""
    result = asyncio.run(check_domain(resolver_for(dns_server, timeout=0.1), "slow.example"))
    assert result.status is DomainStatus.DNS_ERROR
    assert result.reason == "DNS timeout"


def test_no_resolver_at_all_is_dns_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify that with no nameserver in the settings and no system configuration, every
    lookup is dns_error naming the cause (unknown: the row waits), instead of an exception."""

    class Unconfigured(dns.asyncresolver.Resolver):
        def __init__(self, configure: bool = True) -> None:
            if configure:
                raise dns.resolver.NoResolverConfiguration("no /etc/resolv.conf")
            super().__init__(configure=False)

    monkeypatch.setattr(dns.asyncresolver, "Resolver", Unconfigured)
    results = asyncio.run(check_domains(make_resolver([], 0.5), ["mx-ok.example", "x.example"]))
    assert {(r.status, r.reason) for r in results.values()} == {
        (DomainStatus.DNS_ERROR, "no DNS resolver configured")
    }


def test_each_distinct_domain_is_looked_up_once(dns_server: DnsServer) -> None:
    """Verify 300 addresses over 3 domains cost one MX query per domain."""
    fresh = DnsServer(dns_server.zones).start()
    try:
        emails = [f"user{i}@{d}" for i in range(100) for d in ("mx-ok.example", "MX-OK.example")]
        emails += [f"x{i}@a-only.example" for i in range(100)]
        emails += ["p@nxdomain.example"]
        result = asyncio.run(check_addresses(emails, resolver=resolver_for(fresh)))
        mx_queries = {name: n for (name, qtype), n in fresh.queries.items() if qtype == "MX"}
        assert mx_queries == {"mx-ok.example": 1, "a-only.example": 1, "nxdomain.example": 1}
        assert result.looked_up == 3
    finally:
        fresh.stop()


def test_cached_domains_are_not_looked_up_again(dns_server: DnsServer) -> None:
    """Verify a domain with a known result sends no query."""
    fresh = DnsServer(dns_server.zones).start()
    try:
        known = asyncio.run(check_domains(resolver_for(fresh), ["mx-ok.example"]))
        before = sum(fresh.queries.values())
        result = asyncio.run(
            check_addresses(["a@mx-ok.example"], resolver=resolver_for(fresh), known=known)
        )
        assert sum(fresh.queries.values()) == before
        assert result.rows[0].skip is None
    finally:
        fresh.stop()


def test_addresses_get_row_statuses_flags_and_suggestions(dns_server: DnsServer) -> None:
    """Verify the row statuses, the first duplicate wins, and flags never block a row."""
    emails = [
        "Ann@mx-ok.example",
        "ann@MX-OK.example",  # same address, other case
        "info@a-only.example",  # role account, still valid
        "bob@null-mx.example",
        "carl@nxdomain.example",
        "dana@no-records.example",
        "eve@silent.example",
        "not-an-address",
        "",
        "josé@bücher.example",
        "finn@gmial.com",  # suggestion; gmial.com itself is NXDOMAIN here
    ]
    result = asyncio.run(check_addresses(emails, resolver=resolver_for(dns_server, 0.5)))
    skips = [row.skip for row in result.rows]
    assert skips == [
        None,
        SkipReason.DUPLICATE,
        None,
        SkipReason.NULL_MX,
        SkipReason.NO_DOMAIN,
        SkipReason.NO_MX,
        SkipReason.DNS_ERROR,
        SkipReason.INVALID_SYNTAX,
        SkipReason.INVALID_SYNTAX,
        None,
        SkipReason.NO_DOMAIN,
    ]
    assert [row.status for row in result.rows][:4] == ["valid", "duplicate", "valid", "null_mx"]
    rows = result.rows
    assert rows[1].reason == "same address as row 1"
    assert rows[2].role and rows[2].flags == "role"
    assert rows[8].reason == "no email"
    assert rows[9].email_normalized == "josé@xn--bcher-kva.example"
    assert rows[10].suggestion == "finn@gmail.com"
    assert rows[0].mx_host == "mx1.mail.example"
    assert sum(result.counts().values()) == len(emails)


def test_skipping_dns_checks_syntax_only() -> None:
    """Verify resolver=None sends no query and leaves syntax-valid rows valid."""
    result = asyncio.run(check_addresses(["a@nxdomain.example", "bad"], resolver=None))
    assert [r.skip for r in result.rows] == [None, SkipReason.INVALID_SYNTAX]
    assert result.looked_up == 0
