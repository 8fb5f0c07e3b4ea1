"""The From domain's SPF, DKIM (one selector) and DMARC records, looked up and judged.

The verdicts are pure functions over the TXT strings found (tested without DNS); the lookup
asks the configured resolver (OUTREACH_DNS_NAMESERVERS), so tests use a loopback server.
Gmail and Yahoo's bulk-sender rules (2024): SPF and DKIM, and a DMARC record (p=none is
enough); DKIM keys of 1024 bits at least, 2048 advised.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.resolver
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from outreach_core.adapters.dns import make_resolver
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import InputError


class Verdict(StrEnum):
    """How one record stands."""

    #: present and sound
    OK = "ok"
    #: present, but weaker than it should be
    WARNING = "warning"
    #: absent or broken: fix it before sending in bulk
    PROBLEM = "problem"
    #: the lookup itself failed (timeout, SERVFAIL): unknown
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RecordCheck:
    """One record: where it was looked up, what was found, the verdict and why."""

    kind: str
    name: str
    record: str | None
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class DomainCheck:
    """The three checks of one domain."""

    domain: str
    checks: list[RecordCheck]

    @property
    def verdict(self) -> Verdict:
        order = [Verdict.PROBLEM, Verdict.UNKNOWN, Verdict.WARNING, Verdict.OK]
        return next(v for v in order if any(c.verdict is v for c in self.checks))

    def summary(self) -> str:
        """One plain sentence for the page."""
        bad = [c.kind for c in self.checks if c.verdict is not Verdict.OK]
        if not bad:
            return f"{self.domain}: SPF, DKIM and DMARC are in place."
        return f"{self.domain}: look at {', '.join(bad)} before sending in bulk."


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def spf_check(domain: str, txts: list[str]) -> RecordCheck:
    """Judge the SPF record among a domain's TXT strings (RFC 7208)."""
    found = [t for t in txts if t.lower().split(" ", 1)[0] == "v=spf1"]
    if not found:
        return RecordCheck(
            "SPF", domain, None, Verdict.PROBLEM,
            "no SPF record: receivers cannot tell which servers may send for this domain; "
            "publish one, e.g. `v=spf1 include:<your provider> -all`",
        )  # fmt: skip
    if len(found) > 1:
        return RecordCheck(
            "SPF", domain, " | ".join(found), Verdict.PROBLEM,
            f"{len(found)} SPF records: only one is allowed (receivers treat it as an error); "
            "merge them",
        )  # fmt: skip
    record = found[0]
    terms = record.lower().split()
    last = terms[-1] if terms else ""
    if last in ("+all", "all"):
        return RecordCheck(
            "SPF", domain, record, Verdict.PROBLEM,
            "ends in +all: any server may send as this domain; end it in -all or ~all",
        )  # fmt: skip
    if last not in ("-all", "~all") and not any(t.startswith("redirect=") for t in terms):
        return RecordCheck(
            "SPF", domain, record, Verdict.WARNING,
            "does not end in -all or ~all: mail from other servers is not marked as failing",
        )  # fmt: skip
    return RecordCheck("SPF", domain, record, Verdict.OK, "present")


def dkim_check(name: str, txts: list[str]) -> RecordCheck:
    """Judge the DKIM key record at `selector._domainkey.domain` (RFC 6376)."""
    found = [t for t in txts if "p=" in t.replace(" ", "")]
    if not found:
        return RecordCheck(
            "DKIM", name, None, Verdict.PROBLEM,
            "no DKIM key at this selector: check the selector your provider signs with",
        )  # fmt: skip
    record = found[0]
    tags = _tags(record)
    key = tags.get("p", "")
    if not key:
        return RecordCheck("DKIM", name, record, Verdict.PROBLEM, "the key is revoked (empty p=)")
    try:
        public = load_der_public_key(base64.b64decode(key, validate=True))
    except (ValueError, binascii.Error):
        if tags.get("k") == "ed25519" and len(base64.b64decode(key + "==")) == 32:
            return RecordCheck("DKIM", name, record, Verdict.OK, "Ed25519 key")
        return RecordCheck("DKIM", name, record, Verdict.PROBLEM, "p= is not a public key")
    if isinstance(public, ed25519.Ed25519PublicKey):
        return RecordCheck("DKIM", name, record, Verdict.OK, "Ed25519 key")
    if isinstance(public, rsa.RSAPublicKey):
        bits = public.key_size
        if bits < 1024:
            return RecordCheck(
                "DKIM", name, record, Verdict.PROBLEM,
                f"RSA key of {bits} bits: receivers ignore keys under 1024; use 2048",
            )  # fmt: skip
        if bits < 2048:
            return RecordCheck(
                "DKIM", name, record, Verdict.WARNING, f"RSA key of {bits} bits: 2048 is advised"
            )
        return RecordCheck("DKIM", name, record, Verdict.OK, f"RSA key of {bits} bits")
    return RecordCheck("DKIM", name, record, Verdict.WARNING, "a key type receivers may not know")


def dmarc_check(name: str, txts: list[str]) -> RecordCheck:
    """Judge the DMARC record at `_dmarc.domain` (RFC 7489)."""
    found = [t for t in txts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if not found:
        return RecordCheck(
            "DMARC", name, None, Verdict.PROBLEM,
            "no DMARC record: Gmail and Yahoo require one from bulk senders; "
            "`v=DMARC1; p=none; rua=mailto:<you>` is enough to start",
        )  # fmt: skip
    if len(found) > 1:
        return RecordCheck(
            "DMARC", name, " | ".join(found), Verdict.PROBLEM,
            f"{len(found)} DMARC records: receivers ignore all of them; keep one",
        )  # fmt: skip
    record = found[0]
    policy = _tags(record).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return RecordCheck(
            "DMARC", name, record, Verdict.PROBLEM,
            "no valid p= policy (none, quarantine or reject)",
        )  # fmt: skip
    if policy == "none":
        return RecordCheck(
            "DMARC", name, record, Verdict.OK,
            "policy none: meets the bulk-sender rule; quarantine or reject also stops spoofing",
        )  # fmt: skip
    return RecordCheck("DMARC", name, record, Verdict.OK, f"policy {policy}")


#: a DKIM selector: DNS labels of letters, digits and hyphens
_SELECTOR = re.compile(r"[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*")


class LookupFailed(Exception):
    """The DNS lookup did not answer (timeout, SERVFAIL)."""


async def _txt(resolver: dns.asyncresolver.Resolver, name: str) -> list[str]:
    """The TXT strings of a name (each record's strings joined); [] when there is none."""
    try:
        answer = await resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise LookupFailed(type(exc).__name__) from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def domain_of(value: str) -> str:
    """The domain of a From address (or a bare domain), in ASCII form."""
    text = value.strip()
    if "@" in text:
        checked = check_syntax(text)
        if not checked.ok or checked.address is None:
            raise InputError(f"{text!r} is not an email address: {checked.error}")
        return checked.address.rpartition("@")[2]
    checked = check_syntax(f"postmaster@{text}")
    if not text or not checked.ok or checked.address is None:
        raise InputError(f"{text!r} is not a domain name")
    return checked.address.rpartition("@")[2]


async def check_domain_async(
    resolver: dns.asyncresolver.Resolver, domain: str, selector: str
) -> DomainCheck:
    """Look up the three records at once and judge them."""
    selector = selector.strip()
    if selector and not _SELECTOR.fullmatch(selector):
        raise InputError(f"DKIM selector {selector!r}: letters, digits, - and . only")
    names = {
        "SPF": domain,
        "DKIM": f"{selector}._domainkey.{domain}" if selector else None,
        "DMARC": f"_dmarc.{domain}",
    }
    judges = {"SPF": spf_check, "DKIM": dkim_check, "DMARC": dmarc_check}

    async def one(kind: str, name: str | None) -> RecordCheck:
        if name is None:
            return RecordCheck(kind, "", None, Verdict.UNKNOWN, "give the DKIM selector to check")
        try:
            txts = await _txt(resolver, name)
        except LookupFailed as exc:
            return RecordCheck(kind, name, None, Verdict.UNKNOWN, f"DNS lookup failed ({exc})")
        return judges[kind](name, txts)

    checks = await asyncio.gather(*(one(kind, name) for kind, name in names.items()))
    return DomainCheck(domain, list(checks))


def check_sender_domain(
    nameservers: list[tuple[str, int]], timeout: float, from_address: str, selector: str
) -> DomainCheck:
    """SPF, DKIM (for `selector`) and DMARC of the domain of `from_address`."""
    domain = domain_of(from_address)
    resolver = make_resolver(nameservers, timeout)
    return asyncio.run(check_domain_async(resolver, domain, selector))
