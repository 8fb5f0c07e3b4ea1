"""The MIME message built for one delivery: headers, parts, and no header injection."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from outreach_core.domain.message import DELIVERY_HEADER, Sender, build_message, header_safe
from outreach_core.domain.templating import Rendered

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SENDER = Sender(email="team@example.com", name="Outreach Team")
INJECTION = "\r\nBcc: x@example.net"


def reparse(raw: bytes) -> EmailMessage:
    """The message as a receiving server would parse it."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def build(rendered: Rendered, *, sender: Sender = SENDER, delivery_id: int = 42) -> EmailMessage:
    outgoing = build_message(
        rendered, sender=sender, recipient="ann@example.org", delivery_id=delivery_id, now=NOW
    )
    return reparse(outgoing.data)


def test_headers_name_sender_recipient_subject_date_and_delivery() -> None:
    """Verify From (with display name), To, Subject, Date, Message-ID and X-Outreach-Delivery."""
    outgoing = build_message(
        Rendered("Hello Ann", "<p>Hello</p>", "Hello"),
        sender=SENDER,
        recipient="ann@example.org",
        delivery_id=42,
        now=NOW,
    )
    message = reparse(outgoing.data)
    assert message["From"].addresses[0].display_name == "Outreach Team"
    assert message["From"].addresses[0].addr_spec == "team@example.com"
    assert message["To"] == "ann@example.org"
    assert message["Subject"] == "Hello Ann"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message[DELIVERY_HEADER] == "42"
    assert DELIVERY_HEADER == "X-Outreach-Delivery"
    message_id = message["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@example.com>")
    assert "outreach.42" in message_id
    assert outgoing.message_id == message_id
    assert outgoing.envelope_from == "team@example.com"
    assert outgoing.recipient == "ann@example.org"
    assert outgoing.delivery_id == 42


def test_message_ids_are_unique_per_message() -> None:
    """Verify two messages for the same delivery still get distinct Message-IDs."""
    first = build(Rendered("s", None, "t"))
    second = build(Rendered("s", None, "t"))
    assert first["Message-ID"] != second["Message-ID"]


def test_text_and_html_make_multipart_alternative_text_first() -> None:
    """Verify both bodies give multipart/alternative with text/plain before text/html."""
    message = build(Rendered("s", "<p>Grüße &amp; more</p>", "Grüße & more"))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().strip() == "Grüße & more"
    assert parts[1].get_content().strip() == "<p>Grüße &amp; more</p>"


def test_html_only_message_is_single_part_html() -> None:
    """Verify an HTML-only template gives a single text/html message."""
    message = build(Rendered("s", "<p>Hi</p>", None))
    assert message.get_content_type() == "text/html"
    assert not message.is_multipart()
    assert message.get_content().strip() == "<p>Hi</p>"


def test_text_only_message_is_single_part_plain() -> None:
    """Verify a text-only template gives a single text/plain message."""
    message = build(Rendered("s", None, "Hi there"))
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "Hi there"


def test_non_ascii_subject_and_display_name_survive_the_round_trip() -> None:
    """Verify encoded words decode back to the original Unicode text."""
    message = build(Rendered("Café für José", None, "x"), sender=Sender("team@example.com", "Zoë"))
    assert message["Subject"] == "Café für José"
    assert message["From"].addresses[0].display_name == "Zoë"


@pytest.mark.parametrize("where", ["subject", "display name"])
def test_crlf_in_subject_or_display_name_adds_no_header(where: str) -> None:
    """Verify "\\r\\nBcc: …" in the subject or the sender's name produces no Bcc header."""
    subject = f"Hello{INJECTION}" if where == "subject" else "Hello"
    name = f"Team{INJECTION}" if where == "display name" else "Team"
    message = build(Rendered(subject, "<p>x</p>", "x"), sender=Sender("team@example.com", name))
    assert message.get_all("Bcc") is None
    assert all("x@example.net" not in addr.addr_spec for addr in message["From"].addresses)
    assert [a.addr_spec for a in message["To"].addresses] == ["ann@example.org"]
    assert "\n" not in str(message["Subject"]) and "\n" not in str(message["From"])


def test_idn_recipient_domain_is_not_an_encoded_word_on_the_wire() -> None:
    """Verify To carries an IDN domain as IDNA ASCII (or raw UTF-8), never as =?utf-8?…?=."""
    outgoing = build_message(
        Rendered("s", None, "t"),
        sender=SENDER,
        recipient="ann@bücher.example",
        delivery_id=1,
        now=NOW,
    )
    to_line = next(line for line in outgoing.data.splitlines() if line.startswith(b"To:"))
    assert b"=?" not in to_line


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "a\rb", "a\x00b", "a\u2028b", "a\x85b"])
def test_header_safe_folds_control_characters_into_a_space(value: str) -> None:
    """Verify every control or line-separator character becomes a single space."""
    assert header_safe(value) == "a b"


def _longest_line(data: bytes) -> int:
    return max(len(line) for line in data.split(b"\r\n"))


def _header_lines(data: bytes, name: bytes) -> list[bytes]:
    """The lines of one header: its first line and the folded lines after it."""
    lines = data.split(b"\r\n\r\n")[0].split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(name + b":"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i][:1].isspace()), len(lines))
    return lines[start:end]


@pytest.mark.parametrize(
    "subject",
    [
        "x" * 5000,  # one word: cannot fold at a space
        " ".join(["word"] * 1000),
        "é" * 3000,
        "Hello " + "y" * 200 + " and =?utf-8?q?not_a_word?= bye",
    ],
    ids=["one-long-word", "many-words", "non-ascii", "long-word-among-words"],
)
def test_long_subject_is_folded_into_short_lines_and_decodes_intact(subject: str) -> None:
    """Verify no line of the Subject exceeds 78 octets (RFC 5322 asks for 78), none of the
    message 998 (it requires that), and the Subject a receiver parses is the one rendered."""
    outgoing = build_message(
        Rendered(subject, "<p>Hi</p>", "Hi"),
        sender=SENDER,
        recipient="ann@example.org",
        delivery_id=7,
        now=NOW,
    )
    subject_lines = _header_lines(outgoing.data, b"Subject")
    assert len(subject_lines) > 1 and max(len(line) for line in subject_lines) <= 78
    assert _longest_line(outgoing.data) <= 998
    assert reparse(outgoing.data)["Subject"] == subject


def test_long_subject_to_a_utf8_address_is_folded_too() -> None:
    """Verify the SMTPUTF8 path (non-ASCII local part) also folds a 5,000-character subject."""
    subject = "z" * 5000
    outgoing = build_message(
        Rendered(subject, None, "Hi"),
        sender=SENDER,
        recipient="jörg@example.org",
        delivery_id=8,
        now=NOW,
    )
    assert _longest_line(outgoing.data) <= 998
    assert reparse(outgoing.data)["Subject"] == subject


def test_structured_header_is_never_turned_into_encoded_words() -> None:
    """Verify a long List-Unsubscribe keeps its `<uri>, <uri>` form (encoded words would break
    it), folded only at the space between the two URIs."""
    url = "https://example.com/unsubscribe?email=ann%40example.org&token=" + "t" * 120
    value = f"<{url}>, <mailto:unsub@example.com?subject=unsubscribe%20tok>"
    outgoing = build_message(
        Rendered("s", None, "t"),
        sender=SENDER,
        recipient="ann@example.org",
        delivery_id=9,
        now=NOW,
        extra_headers={"List-Unsubscribe": value},
    )
    assert b"=?" not in outgoing.data.split(b"\r\n\r\n")[0]
    assert f"<{url}>".encode() in outgoing.data
    assert reparse(outgoing.data)["List-Unsubscribe"].strip() == value
    assert _longest_line(outgoing.data) <= 998
