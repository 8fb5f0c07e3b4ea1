"""Can a domain receive mail? MX lookups with dnspython's async resolver.

One lookup per distinct domain, many at a time. The verdicts (RFC 5321 and RFC 7505):

- MX records            -> `valid`, `mx_host` = the most preferred exchange
- a null MX (`MX 0 .`)  -> `null_mx`: the domain says it accepts no mail (even with an A record)
- no MX, but A or AAAA  -> `valid` through the implicit MX, `mx_host` = the domain itself
- no MX, no A, no AAAA  -> `no_mx`
- NXDOMAIN              -> `no_domain`
- timeout, SERVFAIL, no answer at all -> `dns_error`: unknown, never taken as invalid
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver


class DomainStatus(StrEnum):
    """What DNS says about a domain's mail."""

    #: MX records, or the implicit MX of an A/AAAA record
    VALID = "valid"
    #: the name exists but has neither MX nor A/AAAA
    NO_MX = "no_mx"
    #: `MX 0 .`: the domain accepts no mail (RFC 7505)
    NULL_MX = "null_mx"
    #: NXDOMAIN: the name does not exist
    NO_DOMAIN = "no_domain"
    #: timeout or server failure: unknown
    DNS_ERROR = "dns_error"


@dataclass(frozen=True)
class DomainResult:
    """The verdict on one domain (ASCII form)."""

    domain: str
    status: DomainStatus
    mx_host: str | None = None
    reason: str = ""


#: lookups running at the same time, by default
DEFAULT_CONCURRENCY = 100


def make_resolver(nameservers: list[tuple[str, int]], timeout: float) -> dns.asyncresolver.Resolver:
    """An async resolver asking `nameservers` (host, port), else the system's resolvers.

    `timeout` bounds each whole lookup (all retries included).
    """
    resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


async def _query(resolver: dns.asyncresolver.Resolver, domain: str, rdtype: str) -> list:
    """The answer's records; [] when the name exists without records of this type."""
    try:
        answer = await resolver.resolve(domain, rdtype, search=False)
    except dns.resolver.NoAnswer:
        return []
    return list(answer)


async def check_domain(resolver: dns.asyncresolver.Resolver, domain: str) -> DomainResult:
    """Look one domain up; every DNS failure becomes a verdict, never an exception."""
    try:
        mx = await _query(resolver, domain, "MX")
        if mx:
            if any(str(r.exchange) == "." for r in mx):
                return DomainResult(domain, DomainStatus.NULL_MX, None, "null MX: accepts no mail")
            best = min(mx, key=lambda r: r.preference)
            return DomainResult(domain, DomainStatus.VALID, str(best.exchange).rstrip("."))
        for rdtype in ("A", "AAAA"):
            if await _query(resolver, domain, rdtype):
                return DomainResult(domain, DomainStatus.VALID, domain, f"no MX, {rdtype} record")
        return DomainResult(domain, DomainStatus.NO_MX, None, "no MX and no A/AAAA record")
    except dns.resolver.NXDOMAIN:
        return DomainResult(domain, DomainStatus.NO_DOMAIN, None, "domain does not exist")
    except dns.exception.Timeout:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, "DNS timeout")
    except dns.resolver.NoNameservers:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, "DNS server failure")
    except dns.exception.DNSException as exc:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, f"DNS error: {exc}")


class DomainChecker:
    """Resolves each distinct domain once, at most `concurrency` at a time.

    `submit(domain)` starts a lookup in the background (a repeat is free); `results()` waits
    for all of them. Use it inside one event loop.
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        known: dict[str, DomainResult] | None = None,
        on_done: Callable[[DomainResult], None] | None = None,
    ) -> None:
        self._resolver = resolver
        self._limit = asyncio.Semaphore(concurrency)
        self._known = dict(known or {})
        self._tasks: dict[str, asyncio.Task[DomainResult]] = {}
        self._on_done = on_done

    def submit(self, domain: str) -> None:
        if domain in self._known or domain in self._tasks:
            return
        self._tasks[domain] = asyncio.get_running_loop().create_task(self._one(domain))

    async def _one(self, domain: str) -> DomainResult:
        async with self._limit:
            result = await check_domain(self._resolver, domain)
        if self._on_done:
            self._on_done(result)
        return result

    @property
    def looked_up(self) -> int:
        """How many lookups were started (cached domains excluded)."""
        return len(self._tasks)

    async def results(self) -> dict[str, DomainResult]:
        done = await asyncio.gather(*self._tasks.values())
        return {**self._known, **{r.domain: r for r in done}}


async def check_domains(
    resolver: dns.asyncresolver.Resolver,
    domains: Iterable[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> dict[str, DomainResult]:
    """Each distinct domain of `domains`, looked up once."""
    checker = DomainChecker(resolver, concurrency=concurrency)
    for domain in domains:
        checker.submit(domain)
    return await checker.results()
