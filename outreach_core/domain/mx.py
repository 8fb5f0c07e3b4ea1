"""What DNS says about a domain's mail: the verdict words and one domain's verdict.

The lookups themselves are in `adapters/dns.py`; planning, the pre-flight and the ledger read
only these types. Which verdict the answers give is decided here (`mx_verdict`), without I/O:
a mail host must have an address (RFC 5321 section 5.1), and a public one, to take mail from
the Internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class DomainStatus(StrEnum):
    """What DNS says about a domain's mail."""

    #: MX records, or the implicit MX of an A/AAAA record, with a public address
    VALID = "valid"
    #: the name exists but has neither MX nor A/AAAA
    NO_MX = "no_mx"
    #: `MX 0 .`: the domain accepts no mail (RFC 7505)
    NULL_MX = "null_mx"
    #: NXDOMAIN: the name does not exist
    NO_DOMAIN = "no_domain"
    #: every MX host is NXDOMAIN or has no A/AAAA record: no server can take the mail
    MX_UNRESOLVABLE = "mx_unresolvable"
    #: the mail hosts (or the implicit MX) resolve only to private, loopback, link-local or
    #: other non-public addresses: unreachable from the Internet
    PRIVATE_ADDRESS = "private_address"
    #: timeout or server failure: unknown
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class DomainResult:
    """The verdict on one domain (ASCII form)."""

    domain: str
    status: DomainStatus
    mx_host: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class HostLookup:
    """What the A/AAAA lookups of one mail host found.

    `nxdomain`: the name does not exist; `error`: a lookup failed (timeout, server failure),
    so what the host has is unknown; else `addresses` (possibly none).
    """

    host: str
    addresses: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str | None = None


def address_scope(address: str) -> str | None:
    """None for a public (globally routable) address, else what it is: `loopback`,
    `private`, `link-local`, `multicast`, `unspecified` or `reserved` (documentation,
    shared, benchmarking and other special ranges). An IPv4-mapped IPv6 address counts as
    its IPv4 address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return None
    for scope, found in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private and not _special(ip)),
    ):
        if found:
            return scope
    return "reserved"


#: ranges `is_private` includes that are not private networks: named `reserved` instead
_SPECIAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
    )
)


def _special(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(ip.version == net.version and ip in net for net in _SPECIAL_NETWORKS)


def is_public(address: str) -> bool:
    """Whether a mail server at this address can be reached from the Internet."""
    return address_scope(address) is None


#: MX hosts looked up per domain, most preferred first (the rest are not tried)
MAX_MX_HOSTS = 10
#: the longest reason a verdict carries (the DNS cache keeps up to 500 characters)
MAX_REASON = 400
#: hosts named in an mx_unresolvable reason; the rest are counted
_NAMED_HOSTS = 3


def _bounded(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def mx_verdict(domain: str, hosts: Sequence[HostLookup], *, implicit: bool = False) -> DomainResult:
    """The verdict from the address lookups of a domain's mail hosts, most preferred first.

    `implicit`: there is no MX and `hosts` is the domain itself (RFC 5321's implicit MX).
    The first host with a public address makes the domain `valid`; else a failed lookup makes
    it `dns_error` (unknown: that host may have one); else hosts with only non-public
    addresses make it `private_address`; else it is `mx_unresolvable` (`no_mx` for the
    implicit MX).
    """
    for host in hosts:
        public = [a for a in host.addresses if is_public(a)]
        if public:
            if not implicit:
                return DomainResult(domain, DomainStatus.VALID, host.host)
            label = "AAAA" if ":" in public[0] else "A"
            return DomainResult(domain, DomainStatus.VALID, host.host, f"no MX, {label} record")
    failed = next((h for h in hosts if h.error), None)
    if failed is not None:
        where = "" if implicit else f" looking up MX host {failed.host}"
        return DomainResult(
            domain, DomainStatus.DNS_ERROR, None, _bounded(f"{failed.error}{where}")
        )
    private = next((h for h in hosts if h.addresses), None)
    if private is not None:
        listed = ", ".join(f"{a} ({address_scope(a)})" for a in private.addresses[:4])
        what = (
            "no MX, and its A/AAAA records point" if implicit else f"MX host {private.host} points"
        )
        reason = f"{what} only to addresses not reachable from the Internet: {listed}"
        return DomainResult(domain, DomainStatus.PRIVATE_ADDRESS, private.host, _bounded(reason))
    if implicit or not hosts:
        return DomainResult(domain, DomainStatus.NO_MX, None, "no MX and no A/AAAA record")
    missing = "; ".join(
        f"{h.host} {'does not exist (NXDOMAIN)' if h.nxdomain else 'has no A/AAAA record'}"
        for h in hosts[:_NAMED_HOSTS]
    )
    if len(hosts) > _NAMED_HOSTS:
        missing += f"; and {len(hosts) - _NAMED_HOSTS} more"
    return DomainResult(
        domain,
        DomainStatus.MX_UNRESOLVABLE,
        hosts[0].host,
        _bounded(f"MX host {missing}: no server can receive the mail"),
    )


def receives_mail(status: DomainStatus, *, test_environment: bool = False) -> bool:
    """Whether rows of a domain with this verdict are sent: `valid`, and in a test
    environment also `private_address` (a staging relay on a private network; flagged)."""
    return status is DomainStatus.VALID or (
        test_environment and status is DomainStatus.PRIVATE_ADDRESS
    )
