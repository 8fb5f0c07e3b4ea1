"""SPF, DKIM and DMARC verdicts over TXT strings (no DNS)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from outreach_core.adapters.sender_domain import (
    DomainCheck,
    RecordCheck,
    Verdict,
    dkim_check,
    dmarc_check,
    domain_of,
    spf_check,
)
from outreach_core.errors import InputError


def dkim_record(bits: int | None) -> str:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if bits is None
        else rsa.generate_private_key(public_exponent=65537, key_size=bits)
    )
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k={'ed25519' if bits is None else 'rsa'}; p={base64.b64encode(der).decode()}"


@pytest.mark.parametrize(
    ("txts", "verdict", "says"),
    [
        (["v=spf1 include:_spf.example.net -all"], Verdict.OK, "present"),
        (["v=spf1 mx ~all", "google-site-verification=x"], Verdict.OK, "present"),
        (["v=spf1 redirect=_spf.example.net"], Verdict.OK, "present"),
        (["google-site-verification=x"], Verdict.PROBLEM, "no SPF record"),
        ([], Verdict.PROBLEM, "no SPF record"),
        (["v=spf1 -all", "v=spf1 mx -all"], Verdict.PROBLEM, "2 SPF records"),
        (["v=spf1 +all"], Verdict.PROBLEM, "any server"),
        (["v=spf1 mx ?all"], Verdict.WARNING, "does not end in -all or ~all"),
        (["v=spf10 -all"], Verdict.PROBLEM, "no SPF record"),  # not an SPF version
    ],
)
def test_spf(txts: list[str], verdict: Verdict, says: str) -> None:
    """Verify the SPF verdict table."""
    check = spf_check("example.com", txts)
    assert (check.verdict, check.kind) == (verdict, "SPF")
    assert says in check.message


@pytest.mark.parametrize(
    ("bits", "verdict", "says"),
    [
        (2048, Verdict.OK, "2048 bits"),
        (1024, Verdict.WARNING, "2048 is advised"),
        (None, Verdict.OK, "Ed25519"),
    ],
)
def test_dkim_key_sizes(bits: int | None, verdict: Verdict, says: str) -> None:
    """Verify DKIM keys are judged by type and size."""
    check = dkim_check("s1._domainkey.example.com", [dkim_record(bits)])
    assert check.verdict is verdict and says in check.message


@pytest.mark.parametrize(
    ("txts", "says"),
    [
        ([], "no DKIM key"),
        (["v=DKIM1; k=rsa; p="], "revoked"),
        (["v=DKIM1; p=bm90LWEta2V5"], "not a public key"),
    ],
)
def test_dkim_problems(txts: list[str], says: str) -> None:
    """Verify a missing, revoked or garbled key is a problem."""
    check = dkim_check("s1._domainkey.example.com", txts)
    assert check.verdict is Verdict.PROBLEM and says in check.message


@pytest.mark.parametrize(
    ("txts", "verdict", "says"),
    [
        (["v=DMARC1; p=reject; rua=mailto:d@example.com"], Verdict.OK, "policy reject"),
        (["v=DMARC1; p=none"], Verdict.OK, "policy none"),
        (["v=DMARC1; rua=mailto:d@example.com"], Verdict.PROBLEM, "no valid p= policy"),
        (["v=DMARC1; p=maybe"], Verdict.PROBLEM, "no valid p= policy"),
        ([], Verdict.PROBLEM, "no DMARC record"),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], Verdict.PROBLEM, "2 DMARC records"),
    ],
)
def test_dmarc(txts: list[str], verdict: Verdict, says: str) -> None:
    """Verify the DMARC verdict table."""
    check = dmarc_check("_dmarc.example.com", txts)
    assert check.verdict is verdict and says in check.message


def test_overall_verdict_and_summary() -> None:
    """Verify the worst verdict wins and the sentence names what to look at."""
    ok = RecordCheck("SPF", "d", "v=spf1 -all", Verdict.OK, "present")
    warn = RecordCheck("DKIM", "d", "x", Verdict.WARNING, "w")
    bad = RecordCheck("DMARC", "d", None, Verdict.PROBLEM, "p")
    assert DomainCheck("d", [ok]).verdict is Verdict.OK
    assert DomainCheck("d", [ok]).summary() == "d: SPF, DKIM and DMARC are in place."
    assert DomainCheck("d", [ok, warn, bad]).verdict is Verdict.PROBLEM
    assert (
        DomainCheck("d", [ok, warn, bad]).summary()
        == "d: look at DKIM, DMARC before sending in bulk."
    )


def test_domain_of_address_or_domain() -> None:
    """Verify a From address or a bare domain gives the ASCII domain; junk is an InputError."""
    assert domain_of("team@Bücher.example") == "xn--bcher-kva.example"
    assert domain_of("example.com") == "example.com"
    with pytest.raises(InputError):
        domain_of("not a domain!")
