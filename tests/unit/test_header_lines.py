"""Short structured headers stay on one line: `Message-ID: <…>`, never folded after the colon."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from outreach_core.domain.message import FOLD_AT, Sender, build_message
from outreach_core.domain.templating import Rendered

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
#: a long sender domain makes the Message-ID longer than one 78-character line
LONG_DOMAIN = "marketing-department.subsidiary-company.example.com"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://example.com/u?t=abc>, <mailto:unsub@example.com?subject=u>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def header_lines(data: bytes) -> list[str]:
    """The header block's physical lines."""
    return data.split(b"\r\n\r\n", 1)[0].decode("utf-8").split("\r\n")


@pytest.mark.parametrize("recipient", ["ann@example.org", "zoë@example.org"])
@pytest.mark.parametrize("delivery_id", [1, 42, 123_456_789])
def test_message_id_is_one_line_with_its_value(recipient: str, delivery_id: int) -> None:
    """Verify `Message-ID: <id>` is one line (ASCII and SMTPUTF8 paths), the id it carries
    is the one recorded, and no header line is a bare `Name:` with its value folded below."""
    outgoing = build_message(
        Rendered("Hello", "<p>Hello</p>", "Hello"),
        sender=Sender(f"news@{LONG_DOMAIN}", "News"),
        recipient=recipient,
        delivery_id=delivery_id,
        now=NOW,
        extra_headers=UNSUBSCRIBE,
    )
    lines = header_lines(outgoing.data)
    [line] = [line for line in lines if line.lower().startswith("message-id:")]
    assert len(line) > FOLD_AT  # the case that used to fold
    assert re.fullmatch(r"Message-ID: <[^<>\s]+>", line)
    assert line == f"Message-ID: {outgoing.message_id}"
    index = lines.index(line)
    assert not lines[index + 1].startswith((" ", "\t"))  # nothing continues it
    assert f"X-Outreach-Delivery: {delivery_id}" in lines
    for item in lines:
        name, colon, value = item.partition(":")
        if colon and not name.startswith((" ", "\t")):
            assert value.strip(), f"{name} has an empty first line"


def test_long_ascii_headers_fold_at_spaces_within_78() -> None:
    """Verify a long List-Unsubscribe and Subject still fold at a space, each line within 78
    characters, and unfold to the value given."""
    subject = "A subject of many words that runs well past the seventy-eight character line"
    outgoing = build_message(
        Rendered(subject, "<p>x</p>", "x"),
        sender=Sender("team@example.com"),
        recipient="ann@example.org",
        delivery_id=7,
        now=NOW,
        extra_headers=UNSUBSCRIBE,
    )
    lines = header_lines(outgoing.data)
    assert all(len(line) <= FOLD_AT for line in lines if not line.startswith("Message-ID:"))
    message = outgoing.message
    assert message["Subject"] == subject
    assert message["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    start = next(i for i, line in enumerate(lines) if line.startswith("List-Unsubscribe:"))
    assert lines[start] == "List-Unsubscribe: <https://example.com/u?t=abc>,"
    assert lines[start + 1] == " <mailto:unsub@example.com?subject=u>"


def test_a_word_too_long_for_any_line_is_refused() -> None:
    """Verify a structured value with a word over 998 characters is refused, not sent."""
    with pytest.raises(ValueError, match="longer than 998"):
        build_message(
            Rendered("Hi", "<p>x</p>", "x"),
            sender=Sender("team@example.com"),
            recipient="ann@example.org",
            delivery_id=7,
            now=NOW,
            extra_headers={"List-Unsubscribe": "<https://example.com/" + "a" * 1000 + ">"},
        )


def test_message_ids_fit_one_line_for_a_common_domain_and_are_unique() -> None:
    """Verify a Message-ID for `example.com` keeps `Message-ID: <…>` within 78 characters,
    names the delivery, and 1,000 messages of one delivery get 1,000 distinct ids."""
    ids = {
        build_message(
            Rendered("Hi", None, "x"),
            sender=Sender("team@example.com"),
            recipient="ann@example.org",
            delivery_id=123_456_789,
            now=NOW,
        ).message_id
        for _ in range(1000)
    }
    assert len(ids) == 1000
    for message_id in ids:
        assert re.fullmatch(r"<outreach\.123456789\.[A-Za-z0-9_-]{16}@example\.com>", message_id)
        assert len(f"Message-ID: {message_id}") <= FOLD_AT
