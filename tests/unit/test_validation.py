"""Address syntax and normalisation (no network)."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from outreach_core.domain.validation import check_syntax


def test_valid_address_is_normalised_and_keyed_lower_case() -> None:
    """Verify the address keeps its local part's case while the key is lower-cased whole."""
    checked = check_syntax("  Ann.Lee@Example.COM\t")
    assert checked.ok
    assert checked.address == "Ann.Lee@example.com"
    assert checked.key == "ann.lee@example.com"
    assert checked.error is None
    assert checked.raw == "  Ann.Lee@Example.COM\t"


@pytest.mark.parametrize(
    "raw",
    ["José@Bücher.example", "josé@xn--bcher-kva.example", "JOSÉ@BÜCHER.EXAMPLE"],
)
def test_idn_domain_key_is_in_ascii_form(raw: str) -> None:
    """Verify the key of an internationalised domain is its IDNA (punycode) form."""
    checked = check_syntax(raw)
    assert checked.ok
    assert checked.key == "josé@xn--bcher-kva.example"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_blank_is_not_an_address(raw: str) -> None:
    """Verify a blank value is refused with "no email"."""
    checked = check_syntax(raw)
    assert not checked.ok
    assert checked.error == "no email"
    assert checked.key is None and checked.address is None


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("ann.example.com", "@-sign"),
        ("ann@", "after the @-sign"),
        ("ann@@example.com", "invalid characters"),
        ("ann lee@example.com", "invalid character"),
        ("ann@example", "should have a period"),
    ],
)
def test_invalid_address_says_why(raw: str, fragment: str) -> None:
    """Verify a malformed address is refused with email-validator's explanation."""
    checked = check_syntax(raw)
    assert not checked.ok
    assert checked.key is None
    assert fragment in (checked.error or "")


def test_header_injection_attempt_is_not_a_valid_address() -> None:
    """Verify an address carrying a CR/LF and a second header is refused."""
    assert not check_syntax("ann@example.com\r\nBcc: x@example.net").ok


def _reference(raw: str) -> tuple[bool, str | None, str | None]:
    """email-validator's own verdict, for comparison with the fast path."""
    value = raw.strip()
    try:
        result = validate_email(value, check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        return False, None, str(exc)
    return True, result.ascii_email or f"{result.local_part}@{result.ascii_domain}", None


@pytest.mark.parametrize(
    "raw",
    [
        "ann@example.com",
        "Ann.Lee@Example.COM",
        "Postmaster@Example.com",
        "a+tag@sub.example.org",
        "o'brien@example.ie",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@example",
        "a@-example.com",
        "a@example..com",
        "a@localhost",
        "a@host.test",
        "a@[127.0.0.1]",
        "a@xn--bcher-kva.example",
        "a@xn--zz.example",
        "x" * 64 + "@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ".".join(["b" * 60] * 4) + ".com",
        "a@@example.com",
        "Ann <ann@example.com>",
        '"a b"@example.com',
        "a b@example.com",
        "a@exa mple.com",
        "a@example.com.",
        "a@123.com",
        "a@example.c",
    ],
)
def test_fast_path_gives_email_validators_verdict(raw: str) -> None:
    """Verify check_syntax accepts, refuses and normalises exactly as email-validator does."""
    checked = check_syntax(raw)
    assert (checked.ok, checked.address, checked.error) == _reference(raw)
