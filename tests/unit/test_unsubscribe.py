"""Unsubscribe links: base URL plus an HMAC token of the address."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from outreach_core.adapters.crypto import derived_key
from outreach_core.domain.models import SendOptions
from outreach_core.domain.planning import SenderIdentity, render_context
from outreach_core.domain.unsubscribe_links import UnsubscribeLinks, token, verify

SECRET = b"0" * 44


def test_token_is_per_address_case_insensitive_and_keyed() -> None:
    """Verify the same address (any case) gets the same token, another address or another
    key a different one, and verify() accepts only the right token."""
    key = derived_key(SECRET, "unsubscribe")
    assert token(key, "Ann@Example.com") == token(key, "ann@example.com")
    assert token(key, "ann@example.com") != token(key, "bob@example.com")
    assert token(derived_key(b"1" * 44, "unsubscribe"), "ann@example.com") != token(
        key, "ann@example.com"
    )
    assert derived_key(SECRET, "unsubscribe") != derived_key(SECRET, "other")
    assert verify(key, "ann@example.com", token(key, "ann@example.com"))
    assert not verify(key, "ann@example.com", token(key, "bob@example.com"))


def test_link_keeps_the_base_query_and_adds_email_and_token() -> None:
    """Verify the link is the base URL with `email` and `token` added to its query."""
    key = derived_key(SECRET, "unsubscribe")
    link = UnsubscribeLinks("https://example.com/u?list=7", key)("ann+x@example.com")
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "example.com", "/u")
    assert query == {
        "list": ["7"],
        "email": ["ann+x@example.com"],
        "token": [token(key, "ann+x@example.com")],
    }


def test_render_context_has_unsubscribe_url_only_with_a_maker() -> None:
    """Verify `unsubscribe_url` is a built-in only when the run has a base URL."""
    sender, now = SenderIdentity("t@example.com", "T"), datetime(2026, 1, 1, tzinfo=UTC)
    plain = render_context({}, email="a@example.com", sender=sender, run_date=now)
    assert "unsubscribe_url" not in plain
    links = UnsubscribeLinks("https://example.com/u", derived_key(SECRET, "unsubscribe"))
    made = render_context({}, email="a@example.com", sender=sender, run_date=now, unsubscribe=links)
    assert made["unsubscribe_url"] == links("a@example.com")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/u", "example.com/u", "https://example.com/u#x", "https://"]
)
def test_unsubscribe_base_url_must_be_absolute_http(url: str) -> None:
    """Verify the options refuse a base URL that is not an absolute http(s) URL."""
    with pytest.raises(ValidationError, match="give an absolute https:// address"):
        SendOptions(unsubscribe_base_url=url)


def test_a_non_ascii_candidate_token_is_refused() -> None:
    """Verify a token with non-ASCII characters does not verify (and does not raise)."""
    from outreach_core.domain.unsubscribe_links import verify

    assert verify(b"k" * 32, "a@example.com", "jrRybEE3EgWMilGSpl9N4é") is False
