"""Address validation at scale: Outreach's pre-flight against its floor and the naive baseline.

100,000 addresses over 2,000 domains (Zipf-like shares; a few percent A-only, null-MX, NXDOMAIN
and silent domains; ~2 % bad syntax), answered by a DNS server on 127.0.0.1 with 20 ms latency.

- outreach: `services.preflight.check_addresses` (syntax with each distinct domain part checked once,
  each distinct domain resolved once while the syntax pass goes on, concurrency 100);
- floor: distinct domains x latency / concurrency + the time of email-validator's
  `validate_email(..., check_deliverability=False)` over every address, measured here;
- naive baseline: email-validator's own deliverability check per address, timed on a 2,000-
  address sample and extrapolated to all addresses.

    python benchmarks/validate_bench.py [--addresses 100000] [--domains 2000]

Ends with `RESULT outreach_s=… floor_s=… ratio_to_floor=… naive_s=… speedup=… peak_rss_mb=…`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import random
import resource
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

import dns.resolver  # noqa: E402
from email_validator import EmailNotValidError, validate_email  # noqa: E402

from outreach_core.adapters.dns import make_resolver  # noqa: E402
from outreach_core.services.preflight import check_addresses  # noqa: E402
from tests.dns_server import (  # noqa: E402
    A_ONLY,
    MAIL_HOSTS,
    MX_OK,
    NULL_MX,
    NXDOMAIN,
    SILENT,
    DnsServer,
)

LATENCY = 0.020
CONCURRENCY = 100
TIMEOUT = 1.0
BAD_SYNTAX = ["no-at-sign", "two@@example.com", "dot.@example.com", "a@-bad-.com", ""]


def make_zones(count: int, rng: random.Random) -> tuple[list[str], dict]:
    """Domain names in Zipf rank order and their zones: 3 % A-only, 2 % null MX,
    3 % NXDOMAIN, 2 % silent, the rest MX (whose two mail hosts have public addresses)."""
    names = [f"d{n:05d}.example" for n in range(count)]
    kinds = [A_ONLY] * 3 + [NULL_MX] * 2 + [NXDOMAIN] * 3 + [SILENT] * 2 + [MX_OK] * 90
    zones = {name: rng.choice(kinds) for name in names}
    return names, {**zones, **MAIL_HOSTS}


def make_addresses(names: list[str], count: int, rng: random.Random) -> list[str]:
    """One address per domain, the rest drawn with Zipf weights; ~2 % bad syntax; shuffled."""
    weights = [1 / (rank + 1) for rank in range(len(names))]
    domains = names + rng.choices(names, weights=weights, k=count - len(names))
    addresses = [f"user{n}.{rng.randrange(10**6)}@{d}" for n, d in enumerate(domains)]
    for n in rng.sample(range(count), k=count // 50):
        addresses[n] = rng.choice(BAD_SYNTAX)
    rng.shuffle(addresses)
    return addresses


def _serve(zones: dict, latency: float, pipe: Connection) -> None:
    server = DnsServer(zones, latency=latency).start()
    pipe.send(server.port)
    pipe.recv()  # until told to stop
    server.stop()


def start_server(zones: dict, latency: float) -> tuple[int, Connection, mp.Process]:
    """The DNS server in its own process, so its work does not compete with the checks."""
    ours, theirs = mp.Pipe()
    process = mp.get_context("fork").Process(target=_serve, args=(zones, latency, theirs))
    process.start()
    return ours.recv(), ours, process


def syntax_only(addresses: list[str]) -> float:
    start = time.perf_counter()
    for raw in addresses:
        with contextlib.suppress(EmailNotValidError):
            validate_email(raw, check_deliverability=False)
    return time.perf_counter() - start


def naive(addresses: list[str], nameserver: tuple[str, int]) -> float:
    """email-validator's deliverability check, one address after the other."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    resolver.timeout = resolver.lifetime = TIMEOUT
    start = time.perf_counter()
    for raw in addresses:
        with contextlib.suppress(EmailNotValidError):
            validate_email(raw, check_deliverability=True, dns_resolver=resolver)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--domains", type=int, default=2_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()

    rng = random.Random(20260101)
    names, zones = make_zones(args.domains, rng)
    addresses = make_addresses(names, args.addresses, rng)
    port, control, process = start_server(zones, LATENCY)
    nameserver = ("127.0.0.1", port)
    try:
        resolver = make_resolver([nameserver], TIMEOUT)
        start = time.perf_counter()
        result = asyncio.run(check_addresses(addresses, resolver=resolver, concurrency=CONCURRENCY))
        ours = time.perf_counter() - start

        syntax_s = syntax_only(addresses)
        distinct = len({a.rpartition("@")[2].lower() for a in addresses if "@" in a})
        floor = distinct * LATENCY / CONCURRENCY + syntax_s

        sample = addresses[: args.sample]
        naive_sample = naive(sample, nameserver)
        naive_s = naive_sample * len(addresses) / len(sample)
    finally:
        control.send("stop")
        process.join(10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    counts = Counter(row.status for row in result.rows)
    print(
        f"addresses:  {len(addresses)}   distinct domains: {distinct}   "
        f"DNS latency: {LATENCY * 1000:.0f} ms   concurrency: {CONCURRENCY}   "
        f"timeout: {TIMEOUT:g} s"
    )
    print("statuses:   " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"lookups:    {result.looked_up} (one per distinct domain)")
    print(f"{'':<58}{'seconds':>10}")
    print(f"{'syntax only (validate_email, no DNS), every address':<58}{syntax_s:>10.2f}")
    print(f"{'floor = domains x latency / concurrency + syntax only':<58}{floor:>10.2f}")
    print(f"{'outreach pre-flight (syntax + DNS + duplicates + flags)':<58}{ours:>10.2f}")
    print(
        f"{'naive: check_deliverability per address, ' + str(len(sample)) + ' sample':<58}"
        f"{naive_sample:>10.2f}"
    )
    print(f"{'naive extrapolated to every address':<58}{naive_s:>10.2f}")
    print(f"ratio outreach / floor:      {ours / floor:.2f}x   (target <= 1.0)")
    print(f"speed-up over naive:         {naive_s / ours:.0f}x   (target >= 300)")
    print(f"peak RSS:                    {peak_mb:.0f} MB   (target < 400)")
    print(
        f"RESULT outreach_s={ours:.2f} floor_s={floor:.2f} ratio_to_floor={ours / floor:.2f} "
        f"naive_s={naive_s:.0f} speedup={naive_s / ours:.0f} peak_rss_mb={peak_mb:.0f}"
    )


if __name__ == "__main__":
    main()
