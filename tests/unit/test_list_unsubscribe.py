"""List-Unsubscribe and one-click headers, and the per-recipient mailto URI (RFC 6068)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from outreach_core.adapters.crypto import derived_key
from outreach_core.domain.unsubscribe_links import (
    MailtoLinks,
    list_unsubscribe_headers,
    mailto_uri,
    token,
)
from outreach_core.domain.unsubscribe_requests import find_token

KEY = derived_key(b"0" * 44, "unsubscribe")
TOKEN = token(KEY, "ann@example.org")


def test_https_url_gives_one_click_and_comes_before_mailto() -> None:
    """Verify https + mailto: both URIs in angle brackets, https first, plus the Post header."""
    mailto = mailto_uri("unsub@example.com", TOKEN)
    found = list_unsubscribe_headers(mailto=mailto, url="https://example.com/u?t=1")
    assert found == {
        "List-Unsubscribe": f"<https://example.com/u?t=1>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_mailto_alone_has_no_one_click_and_nothing_gives_nothing() -> None:
    """Verify mailto only: no List-Unsubscribe-Post; neither form: no headers at all."""
    mailto = mailto_uri("u@example.com", TOKEN)
    assert list_unsubscribe_headers(mailto=mailto, url=None) == {"List-Unsubscribe": f"<{mailto}>"}
    assert list_unsubscribe_headers(mailto=None, url=None) == {}


def test_plain_http_url_gets_no_one_click_header() -> None:
    """Verify RFC 8058 one-click is only announced for an https URL."""
    found = list_unsubscribe_headers(mailto=None, url="http://example.com/u")
    assert found == {"List-Unsubscribe": "<http://example.com/u>"}


def test_mailto_subject_carries_the_recipients_token_percent_encoded() -> None:
    """Verify the exact form: the space of the subject is %20 (RFC 6068, never +), and the
    token is the recipient's own, so each recipient gets a different URI."""
    links = MailtoLinks("unsub@example.com", KEY)
    assert links("Ann@Example.org") == f"mailto:unsub@example.com?subject=unsubscribe%20{TOKEN}"
    assert links("bob@example.org") != links("ann@example.org")


@pytest.mark.parametrize(
    "address", ["unsub@example.com", "unsub+list@example.com", "a?b&c%d#e,f@example.com"]
)
def test_mailto_round_trips_through_a_uri_parser_to_the_mailbox_reader(address: str) -> None:
    """Verify what a mail client decodes from the URI is the address and a subject in which
    the mailbox reader finds the token: reserved characters of the address (? & % # ,) are
    percent-encoded so they neither end the address nor start a header field."""
    uri = mailto_uri(address, TOKEN)
    parts = urlsplit(uri)
    assert parts.scheme == "mailto"
    assert unquote(parts.path) == address
    assert parse_qs(parts.query) == {"subject": [f"unsubscribe {TOKEN}"]}
    assert find_token(parse_qs(parts.query)["subject"][0]) == TOKEN
    assert " " not in uri and "+" not in uri.partition("?")[2]
