"""List-Unsubscribe and one-click headers."""

from __future__ import annotations

from outreach_core.unsubscribe import list_unsubscribe_headers


def test_https_url_gives_one_click_and_comes_before_mailto() -> None:
    """Verify https + mailto: both URIs in angle brackets, https first, plus the Post header."""
    found = list_unsubscribe_headers(mailto="unsub@example.com", url="https://example.com/u?t=1")
    assert found == {
        "List-Unsubscribe": "<https://example.com/u?t=1>, <mailto:unsub@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_mailto_alone_has_no_one_click_and_nothing_gives_nothing() -> None:
    """Verify mailto only: no List-Unsubscribe-Post; neither form: no headers at all."""
    assert list_unsubscribe_headers(mailto="u@example.com", url=None) == {
        "List-Unsubscribe": "<mailto:u@example.com?subject=unsubscribe>"
    }
    assert list_unsubscribe_headers(mailto=None, url=None) == {}


def test_plain_http_url_gets_no_one_click_header() -> None:
    """Verify RFC 8058 one-click is only announced for an https URL."""
    found = list_unsubscribe_headers(mailto=None, url="http://example.com/u")
    assert found == {"List-Unsubscribe": "<http://example.com/u>"}
