"""The sender domain check against the loopback DNS server: records found, missing, and a
server that does not answer."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from outreach_core.adapters.sender_domain import Verdict, check_sender_domain
from tests.dns_server import SILENT, DnsServer, Zone


def dkim_txt(bits: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def sender_zones() -> dict[str, Zone]:
    """good.example publishes all three (a 2048-bit key, longer than one TXT string);
    weak.example an SPF with +all and a DMARC without policy; bare.example nothing."""
    return {
        "good.example": Zone(txt=("v=spf1 include:_spf.mail.example -all", "other=1")),
        "s1._domainkey.good.example": Zone(txt=(dkim_txt(),)),
        "_dmarc.good.example": Zone(txt=("v=DMARC1; p=quarantine; rua=mailto:d@good.example",)),
        "weak.example": Zone(txt=("v=spf1 +all",)),
        "_dmarc.weak.example": Zone(txt=("v=DMARC1; rua=mailto:d@weak.example",)),
        "bare.example": Zone(),
        "silent.example": SILENT,
        "_dmarc.silent.example": SILENT,
        "s1._domainkey.silent.example": SILENT,
    }


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    server = DnsServer(sender_zones()).start()
    yield server
    server.stop()


def verdicts(dns: DnsServer, sender: str, selector: str = "s1", timeout: float = 2.0) -> dict:
    checked = check_sender_domain([("127.0.0.1", dns.port)], timeout, sender, selector)
    return {c.kind: (c.verdict, c.message) for c in checked.checks}


def test_a_domain_with_all_three_records_passes(dns: DnsServer) -> None:
    """Verify SPF, a long DKIM key (split TXT strings) and DMARC are found and judged ok."""
    found = verdicts(dns, "team@good.example")
    assert {k: v for k, (v, _) in found.items()} == {
        "SPF": Verdict.OK,
        "DKIM": Verdict.OK,
        "DMARC": Verdict.OK,
    }
    assert "2048 bits" in found["DKIM"][1]
    assert dns.queries[("s1._domainkey.good.example", "TXT")] >= 1


def test_weak_and_missing_records_are_problems(dns: DnsServer) -> None:
    """Verify +all, a DMARC without policy, and absent records are problems, each explained."""
    weak = verdicts(dns, "good.example".replace("good", "weak"))
    assert weak["SPF"] == (Verdict.PROBLEM, weak["SPF"][1]) and "+all" in weak["SPF"][1]
    assert weak["DMARC"][0] is Verdict.PROBLEM and "p= policy" in weak["DMARC"][1]
    bare = verdicts(dns, "x@bare.example", selector="")
    assert bare["SPF"][0] is Verdict.PROBLEM and bare["DMARC"][0] is Verdict.PROBLEM
    assert bare["DKIM"] == (Verdict.UNKNOWN, "give the DKIM selector to check")


def test_a_silent_server_gives_unknown_not_a_problem(dns: DnsServer) -> None:
    """Verify a lookup that times out is reported as unknown, naming the failure."""
    found = verdicts(dns, "x@silent.example", timeout=0.5)
    assert all(v is Verdict.UNKNOWN for v, _ in found.values())
    assert "DNS lookup failed" in found["SPF"][1]
