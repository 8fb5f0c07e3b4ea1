"""Address checks: syntax and normalisation (email-validator), and non-blocking flags."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from disposable_email_domains import blocklist as disposable_blocklist
from email_validator import EmailNotValidError, validate_email


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


def check_syntax(raw: str) -> CheckedAddress:
    """Check and normalise one address without touching the network.

    `strict`: an over-long local part is an error here, not a surprise at the mail server.
    """
    value = raw.strip()
    if not value:
        return CheckedAddress(raw=raw, ok=False, error="no email")
    try:
        result = validate_email(value, check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        return CheckedAddress(raw=raw, ok=False, error=str(exc))
    key = f"{result.local_part}@{result.ascii_domain}".lower()
    address = result.ascii_email or f"{result.local_part}@{result.ascii_domain}"
    return CheckedAddress(raw=raw, ok=True, address=address, key=key)


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
