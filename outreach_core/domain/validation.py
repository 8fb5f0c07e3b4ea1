"""Address checks: syntax and normalisation (email-validator), and non-blocking flags."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from disposable_email_domains import blocklist as disposable_blocklist
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from outreach_core.domain.control_chars import email_problem


@dataclass(frozen=True)
class CheckedAddress:
    """The outcome of checking one raw address.

    `address` is what is sent to: the domain in ASCII (IDNA) form, so headers and envelope
    stay ASCII; only a non-ASCII local part keeps Unicode (and needs SMTPUTF8).
    `key` is the de-duplication key: the address with its domain in ASCII (IDNA) form,
    lower-cased as a whole, because nearly every mailbox provider ignores the local part's case.
    """

    raw: str
    ok: bool
    address: str | None = None
    key: str | None = None
    error: str | None = None


#: an unquoted ASCII local part (RFC 5322 dot-atom): email-validator accepts these unchanged
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_CASE_INSENSITIVE_LOCAL = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def check_syntax(raw: str, *, test_environment: bool = False) -> CheckedAddress:
    """Check and normalise one address without touching the network.

    `strict`: an over-long local part is an error here, not a surprise at the mail server.
    `test_environment` (email-validator's): also accept the special-use `test` domain and
    names under `.test` (RFC 6761); `.local`, `.localhost`, `.invalid` and `.onion` stay
    refused either way.
    A plain ASCII address (dot-atom local part, one `@`) takes a fast path that validates its
    domain part once per distinct domain; the verdicts are email-validator's either way.
    """
    value = raw.strip()
    if not value:
        return CheckedAddress(raw=raw, ok=False, error="no email")
    # before trimming would hide one at either end (str.strip takes U+001C-U+001F and U+0085)
    problem = email_problem(raw)
    if problem:
        return CheckedAddress(raw=raw, ok=False, error=problem)
    local, at, domain = value.rpartition("@")
    plain = at and value.isascii() and len(value) <= 254 and len(local) <= 64
    if plain and _PLAIN_LOCAL.fullmatch(local):
        ascii_domain, error = _domain_part(domain, test_environment)
        if error is not None:
            return CheckedAddress(raw=raw, ok=False, error=error)
        if local.lower() in _CASE_INSENSITIVE_LOCAL:
            local = local.lower()
        address = f"{local}@{ascii_domain}"
        return CheckedAddress(raw=raw, ok=True, address=address, key=address.lower())
    try:
        result = validate_email(
            value, check_deliverability=False, strict=True, test_environment=test_environment
        )
    except EmailNotValidError as exc:
        return CheckedAddress(raw=raw, ok=False, error=str(exc))
    key = f"{result.local_part}@{result.ascii_domain}".lower()
    address = result.ascii_email or f"{result.local_part}@{result.ascii_domain}"
    return CheckedAddress(raw=raw, ok=True, address=address, key=key)


@lru_cache(maxsize=65_536)
def _domain_part(domain: str, test_environment: bool) -> tuple[str | None, str | None]:
    """(ASCII domain, None) or (None, error): email-validator's verdict on a domain part."""
    try:
        result = validate_email(
            f"x@{domain}",
            check_deliverability=False,
            strict=True,
            test_environment=test_environment,
        )
    except EmailNotValidError as exc:
        return None, str(exc)
    return result.ascii_domain, None


#: local parts that reach a role or a team rather than a person
ROLE_ACCOUNTS = frozenset(
    [
        "abuse",
        "admin",
        "administrator",
        "billing",
        "contact",
        "enquiries",
        "help",
        "hello",
        "hostmaster",
        "info",
        "jobs",
        "mail",
        "marketing",
        "noc",
        "no-reply",
        "noreply",
        "office",
        "postmaster",
        "press",
        "privacy",
        "sales",
        "security",
        "support",
        "team",
        "webmaster",
    ]
)

#: the big providers whose near-misses get a suggested fix
BIG_PROVIDERS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "yandex.ru",
    "mail.ru",
    "proton.me",
    "protonmail.com",
)


def is_role_account(key: str) -> bool:
    """`info@…`, `sales@…`: an address of a role, not a person (a flag, not an error)."""
    return key.rpartition("@")[0] in ROLE_ACCOUNTS


def _one_edit_apart(a: str, b: str) -> bool:
    """One substitution, insertion, deletion or swap of neighbours turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 1:
            return True
        i = diff[0]
        return len(diff) == 2 and diff[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


@lru_cache(maxsize=65_536)
def suggest_domain(domain: str) -> str | None:
    """A big provider's domain one typo away from `domain` (`gmial.com` -> `gmail.com`)."""
    if domain in BIG_PROVIDERS:
        return None
    for provider in BIG_PROVIDERS:
        if _one_edit_apart(domain, provider):
            return provider
    return None


DISPOSABLE_DOMAINS = frozenset(disposable_blocklist)


def is_disposable(domain: str) -> bool:
    """A throw-away mailbox provider (list from the disposable-email-domains package)."""
    return domain in DISPOSABLE_DOMAINS
