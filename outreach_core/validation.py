"""Address checks: syntax and normalisation (email-validator)."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Check and normalise one address without touching the network."""
    value = raw.strip()
    if not value:
        return CheckedAddress(raw=raw, ok=False, error="no email address")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return CheckedAddress(raw=raw, ok=False, error=str(exc))
    key = f"{result.local_part}@{result.ascii_domain}".lower()
    address = result.ascii_email or f"{result.local_part}@{result.ascii_domain}"
    return CheckedAddress(raw=raw, ok=True, address=address, key=key)
