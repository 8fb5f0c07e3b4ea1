"""List-Unsubscribe and one-click headers, and the per-recipient mailto URI (RFC 6068)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import Parser
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from outreach_core.adapters.crypto import derived_key
from outreach_core.domain.message import Sender, build_message
from outreach_core.domain.templating import Rendered
from outreach_core.domain.unsubscribe_links import (
    MailtoLinks,
    UnsubscribeLinks,
    list_unsubscribe_headers,
    mailto_uri,
    token,
    verify,
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


#: non-ASCII local parts the address checks accept (the domains in their sending, ASCII form)
UTF8_RECIPIENTS = ["zoë@example.test", "jörg.müller@example.org", "用户@xn--fsqu00a.example"]


@pytest.mark.parametrize("recipient", UTF8_RECIPIENTS)
def test_list_unsubscribe_for_a_non_ascii_address_is_plain_ascii_and_leads_back_to_it(
    recipient: str,
) -> None:
    """Verify the header of a message to a non-ASCII local part is plain ASCII (never RFC 2047
    encoded words, which RFC 2369 readers do not decode), that the standard library's header
    parser reads it as `<https…>, <mailto…>`, and that the one-click URL's address, percent-
    encoded UTF-8, decodes to that recipient with a token made for that recipient."""
    links = UnsubscribeLinks("https://example.com/unsubscribe", KEY)
    headers = list_unsubscribe_headers(
        url=links(recipient), mailto=MailtoLinks("unsub@example.com", KEY)(recipient)
    )
    outgoing = build_message(
        Rendered("Héllo 🎉", None, "Hi"),
        sender=Sender("team@example.com", "Tëam"),
        recipient=recipient,
        delivery_id=7,
        now=datetime(2024, 5, 6, tzinfo=UTC),
        extra_headers=headers,
    )
    head = outgoing.data.split(b"\r\n\r\n")[0]
    raw_lines = [line for line in head.split(b"\r\n") if line.startswith(b"List-Unsubscribe")]
    raw = head[head.index(b"List-Unsubscribe:") :].split(b"\r\nList-Unsubscribe-Post:")[0]
    assert raw.isascii() and b"=?" not in raw and len(raw_lines) == 2
    assert outgoing.needs_smtputf8 and f"To: {recipient}\r\n".encode() in head

    # as an SMTPUTF8 server reads it: UTF-8 text
    parsed = Parser(policy=policy.default).parsestr(outgoing.data.decode("utf-8"))
    assert parsed["To"].addresses[0].addr_spec == recipient
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    uris = re.findall(r"<([^<>]*)>", str(parsed["List-Unsubscribe"]))
    assert [u.split(":")[0] for u in uris] == ["https", "mailto"]
    query = parse_qs(urlsplit(uris[0]).query)
    assert query["email"] == [recipient]
    assert verify(KEY, recipient, query["token"][0])
    assert not verify(KEY, "zoe@example.test", query["token"][0])
