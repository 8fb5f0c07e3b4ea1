"""Can a domain receive mail? MX lookups with dnspython's async resolver.

One lookup per distinct domain, many at a time. The verdicts (RFC 5321 and RFC 7505):

- MX records            -> `valid`, `mx_host` = the most preferred exchange
- a null MX (`MX 0 .`)  -> `null_mx`: the domain says it accepts no mail (even with an A record)
- no MX, but A or AAAA  -> `valid` through the implicit MX, `mx_host` = the domain itself
- no MX, no A, no AAAA  -> `no_mx`
- NXDOMAIN              -> `no_domain`
- timeout, SERVFAIL, no answer at all, no resolver -> `dns_error`: unknown, never taken as
  invalid (a run keeps the row pending and looks again: `domain/dns_waits.py`)
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

from outreach_core.domain.mx import DomainResult, DomainStatus

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

    async def close(self) -> None:
        for free in self._sockets.values():
            for sock in free:
                await sock.close()
        self._sockets.clear()


def _records(answer: dns.message.Message, rdtype: dns.rdatatype.RdataType) -> list:
    return [rr for rrset in answer.answer if rrset.rdtype == rdtype for rr in rrset]


async def _check(lookups: _Lookups, domain: str) -> DomainResult:
    mx_answer = await lookups.query(domain, dns.rdatatype.MX)
    if mx_answer.rcode() == dns.rcode.NXDOMAIN:
        return DomainResult(domain, DomainStatus.NO_DOMAIN, None, "domain does not exist")
    mx = _records(mx_answer, dns.rdatatype.MX)
    if mx:
        if any(str(r.exchange) == "." for r in mx):
            return DomainResult(domain, DomainStatus.NULL_MX, None, "null MX: accepts no mail")
        best = min(mx, key=lambda r: r.preference)
        return DomainResult(domain, DomainStatus.VALID, str(best.exchange).rstrip("."))
    for rdtype, label in ((dns.rdatatype.A, "A"), (dns.rdatatype.AAAA, "AAAA")):
        if _records(await lookups.query(domain, rdtype), rdtype):
            return DomainResult(domain, DomainStatus.VALID, domain, f"no MX, {label} record")
    return DomainResult(domain, DomainStatus.NO_MX, None, "no MX and no A/AAAA record")


async def _verdict(lookups: _Lookups, domain: str) -> DomainResult:
    """Look one domain up; every DNS failure becomes a verdict, never an exception."""
    try:
        return await _check(lookups, domain)
    except dns.exception.Timeout:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, "DNS timeout")
    except dns.resolver.NoNameservers:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, "DNS server failure")
    except dns.resolver.NoResolverConfiguration:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, "no DNS resolver configured")
    except dns.exception.DNSException as exc:
        return DomainResult(domain, DomainStatus.DNS_ERROR, None, f"DNS error: {exc}")


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
