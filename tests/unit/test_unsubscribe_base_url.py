"""The unsubscribe base URL: one absolute http(s) address that List-Unsubscribe's `<...>` can
hold as it is; anything that could close the brackets or add a second URI is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from outreach_core.domain.models import SendOptions
from outreach_core.domain.unsubscribe_links import (
    MAX_UNSUBSCRIBE_URL_CHARS,
    UnsubscribeLinks,
    list_unsubscribe_headers,
)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://example.com/u>, <https://evil.example/x", "'>' is not allowed"),
        ("https://example.com/u>,<mailto:evil@example.net>", "'>' is not allowed"),
        ("https://example.com/u,https://evil.example", "',' is not allowed"),
        ("<https://example.com/u>", "'<' is not allowed"),
        ("https://example.com/u https://evil.example", "' ' is not allowed"),
        ("https://example.com/u\thttps://evil.example", "'\\t' is not allowed"),
        ("https://example.com/u\r\nBcc: x@evil.example", "'\\r' is not allowed"),
        ("https://example.com/u\x00", "'\\x00' is not allowed"),
        ('https://example.com/u"x', "'\"' is not allowed"),
        ("https://example.com/u'x", '"\'" is not allowed'),
        ("https://example.com/ü", "percent-encode non-ASCII"),
        ("https://user:s3cret@example.com/u", "remove the user:password@ part"),
        ("https://example.com:99999x/u", "a valid port"),
        ("https://example.com/u#frag", "no #"),
        ("ftp://example.com/u", "absolute https://"),
        ("javascript:alert(1)", "absolute https://"),
        ("/unsubscribe", "absolute https://"),
        ("https:///path-only", "absolute https://"),
        ("https://example.com/" + "a" * MAX_UNSUBSCRIBE_URL_CHARS, "give at most 400"),
    ],
)
def test_bad_base_url_is_refused_saying_why(url: str, words: str) -> None:
    """Verify each URL that could break out of `<...>`, carry a secret or is no absolute http(s)
    address is refused with a message naming what to change (never the password)."""
    with pytest.raises(ValidationError) as caught:
        SendOptions(unsubscribe_base_url=url)
    message = caught.value.errors()[0]["msg"]
    assert words in message
    assert "e.g. https://example.com/unsubscribe" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/unsubscribe",
        "http://127.0.0.1:8000/unsubscribe",
        "https://example.com/u?list=news&lang=en",
        "https://xn--mnchen-3ya.example/u%C3%BC",
        "https://[::1]:8443/u",
    ],
)
def test_good_base_url_makes_one_uri_per_header(url: str) -> None:
    """Verify ordinary base URLs are kept and give a List-Unsubscribe with exactly one https
    or http URI inside one pair of angle brackets."""
    options = SendOptions(unsubscribe_base_url=url)
    assert options.unsubscribe_base_url == url
    link = UnsubscribeLinks(url, b"k" * 32)("ann+news@example.com")
    header = list_unsubscribe_headers(mailto=None, url=link)["List-Unsubscribe"]
    assert header.count("<") == 1 and header.count(">") == 1 and "," not in header


def test_stored_options_with_a_now_refused_url_load_without_it() -> None:
    """Verify options saved before the check (with a second URI) still load, without the base
    URL: rows using `unsubscribe_url` then fail to render instead of carrying the injection."""
    stored = SendOptions().model_dump(mode="json") | {
        "unsubscribe_base_url": "https://e.com/u>, <https://evil.example/x"
    }
    assert SendOptions.from_stored(stored).unsubscribe_base_url is None
    kept = stored | {"unsubscribe_base_url": "https://e.com/u"}
    assert SendOptions.from_stored(kept).unsubscribe_base_url == "https://e.com/u"
