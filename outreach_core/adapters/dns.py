"""Can a domain receive mail? MX lookups with dnspython's async resolver.

One lookup per distinct domain, many at a time; each mail host's A/AAAA lookup once per
checker, however many domains share it. The verdicts (RFC 5321 and RFC 7505; the choice is
`domain/mx.py`'s `mx_verdict`):

- MX records whose host has a public A/AAAA -> `valid`, `mx_host` = the most preferred
  exchange that has one
- a null MX (`MX 0 .`)  -> `null_mx`: the domain says it accepts no mail (even with an A record)
- MX hosts that are NXDOMAIN or have no A/AAAA -> `mx_unresolvable`
- mail hosts with only private, loopback, link-local or reserved addresses -> `private_address`
- no MX, but a public A or AAAA -> `valid` through the implicit MX, `mx_host` = the domain
- no MX, no A, no AAAA  -> `no_mx`
- NXDOMAIN              -> `no_domain`
- timeout, SERVFAIL, no answer at all, no resolver (for the MX or a host's A/AAAA lookup)
  -> `dns_error`: unknown, never taken as invalid (a run keeps the row pending and looks
  again: `domain/dns_waits.py`)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable

import dns.asyncbackend
import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from outreach_core.domain.mx import (
    MAX_MX_HOSTS,
    DomainResult,
    DomainStatus,
    HostLookup,
    is_public,
    mx_verdict,
)

#: lookups running at the same time, by default
DEFAULT_CONCURRENCY = 100


def make_resolver(nameservers: list[tuple[str, int]], timeout: float) -> dns.asyncresolver.Resolver:
    """An async resolver asking `nameservers` (host, port), else the system's resolvers.

    `timeout` bounds each whole lookup (all retries included). With neither (no
    /etc/resolv.conf), the resolver has no nameserver and every lookup is `dns_error`.
    """
    try:
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration:
        resolver = dns.asyncresolver.Resolver(configure=False)
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    return resolver


class _Lookups:
    """MX/A/AAAA queries with dnspython over a pool of reusable UDP sockets.

    The resolver supplies the nameservers (the settings', else the system's) and the
    lifetime; each concurrent lookup borrows one socket instead of opening a new one per
    query, which is most of a query's cost at this scale. Nameservers are tried in turn until
    one answers; a truncated answer is asked again over TCP; SERVFAIL/REFUSED from every
    server is a server failure.
    """

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._servers = [
            (ns, resolver.port) if isinstance(ns, str) else (ns.address, ns.port)
            for ns in resolver.nameservers
            if isinstance(ns, str | dns.nameserver.Do53Nameserver)
        ]
        if resolver.nameservers and not self._servers:
            raise ValueError("no plain DNS nameserver configured")
        self._lifetime = float(resolver.lifetime)
        self._sockets: dict[int, list[dns.asyncbackend.DatagramSocket]] = {}
        self._backend = dns.asyncbackend.get_backend("asyncio")
        self._hosts: dict[str, asyncio.Task[HostLookup]] = {}

    async def _socket(self, af: int) -> dns.asyncbackend.DatagramSocket:
        free = self._sockets.setdefault(af, [])
        if free:
            return free.pop()
        return await self._backend.make_socket(af, socket.SOCK_DGRAM)

    async def query(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """The first usable answer (NOERROR or NXDOMAIN) from the nameservers."""
        if not self._servers:
            raise dns.resolver.NoResolverConfiguration
        request = dns.message.make_query(name, rdtype)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lifetime
        failed = False
        while True:
            for host, port in self._servers:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if failed:
                        raise dns.resolver.NoNameservers
                    raise dns.exception.Timeout
                af = dns.inet.af_for_address(host)
                sock = await self._socket(af)
                try:
                    answer = await dns.asyncquery.udp(
                        request,
                        host,
                        timeout=min(remaining, 2.0),
                        port=port,
                        sock=sock,
                        ignore_unexpected=True,
                    )
                    if answer.flags & dns.flags.TC:
                        answer = await dns.asyncquery.tcp(
                            request, host, timeout=deadline - loop.time(), port=port
                        )
                except (dns.exception.Timeout, OSError) as exc:
                    await sock.close()
                    if isinstance(exc, OSError):  # refused (nothing listens): not a busy loop
                        await asyncio.sleep(min(0.05, max(deadline - loop.time(), 0)))
                    continue
                self._sockets[af].append(sock)
                if answer.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return answer
                failed = True
            if failed and loop.time() < deadline:
                raise dns.resolver.NoNameservers

    async def host(self, name: str) -> HostLookup:
        """The A/AAAA lookup of one mail host, done once however many domains ask."""
        task = self._hosts.get(name)
        if task is None:
            task = self._hosts[name] = asyncio.get_running_loop().create_task(
                _host_lookup(self, name)
            )
        return await asyncio.shield(task)

    async def close(self) -> None:
        for task in self._hosts.values():
            task.cancel()
        self._hosts.clear()
        for free in self._sockets.values():
            for sock in free:
                await sock.close()
        self._sockets.clear()


def _records(answer: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list:
    return [rr for rrset in answer.answer if rrset.rdtype == rdtype for rr in rrset]


def _failure(exc: dns.exception.DNSException) -> str:
    """The words a failed lookup is reported with (a `dns_error` reason)."""
    if isinstance(exc, dns.exception.Timeout):
        return "DNS timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "DNS server failure"
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "no DNS resolver configured"
    return f"DNS error: {exc}"


async def _host_lookup(lookups: _Lookups, host: str) -> HostLookup:
    """A host's addresses: A, then AAAA unless an A record is already public."""
    try:
        answer = await lookups.query(host, dns.rdatatype.A)
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return HostLookup(host, nxdomain=True)
        found = [r.address for r in _records(answer, dns.rdatatype.A)]
        if not any(is_public(a) for a in found):
            answer = await lookups.query(host, dns.rdatatype.AAAA)
            found += [r.address for r in _records(answer, dns.rdatatype.AAAA)]
    except dns.exception.DNSException as exc:
        return HostLookup(host, error=_failure(exc))
    return HostLookup(host, tuple(found))


async def _check(lookups: _Lookups, domain: str) -> DomainResult:
    mx_answer = await lookups.query(domain, dns.rdatatype.MX)
    if mx_answer.rcode() == dns.rcode.NXDOMAIN:
        return DomainResult(domain, DomainStatus.NO_DOMAIN, None, "domain does not exist")
    mx = _records(mx_answer, dns.rdatatype.MX)
    if not mx:
        return mx_verdict(domain, [await lookups.host(domain)], implicit=True)
    if any(str(r.exchange) == "." for r in mx):
        return DomainResult(domain, DomainStatus.NULL_MX, None, "null MX: accepts no mail")
    exchanges = list(
        dict.fromkeys(
            str(r.exchange).rstrip(".").lower() for r in sorted(mx, key=lambda r: r.preference)
        )
    )
    hosts = []
    for exchange in exchanges[:MAX_MX_HOSTS]:
        hosts.append(await lookups.host(exchange))
        if any(is_public(a) for a in hosts[-1].addresses):
            break
    return mx_verdict(domain, hosts)


async def _verdict(lookups: _Lookups, domain: str) -> DomainResult:
    """Look one domain up; every DNS failure becomes a verdict, never an exception."""
    try:
        return await _check(lookups, domain)
    except dns.exception.DNSException as exc:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, _failure(exc))


async def check_domain(resolver: dns.asyncresolver.Resolver, domain: str) -> DomainResult:
    """Look one domain up; every DNS failure becomes a verdict, never an exception."""
    lookups = _Lookups(resolver)
    try:
        return await _verdict(lookups, domain)
    finally:
        await lookups.close()


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
        self._lookups = _Lookups(resolver)
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
            result = await _verdict(self._lookups, domain)
        if self._on_done:
            self._on_done(result)
        return result

    @property
    def looked_up(self) -> int:
        """How many lookups were started (cached domains excluded)."""
        return len(self._tasks)

    async def results(self) -> dict[str, DomainResult]:
        done = await asyncio.gather(*self._tasks.values())
        await self._lookups.close()
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
