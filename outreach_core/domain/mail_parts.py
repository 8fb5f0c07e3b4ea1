"""Reading what comes back to a sending mailbox, defensively: headers, report parts and the
returned original, from any bytes at all.

Anyone can send a mailbox anything, so every reader here returns an empty value rather than
raising on a malformed part, and header values are cut at `MAX_HEADER_CHARS` before the
standard library parses them (its structured-header parser slows down sharply on long runs of
encoded words). The verdicts are in `feedback_rules.py` and `mailbox_feedback.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

#: a header value is read up to this many characters (a real Subject or References is far
#: shorter; the rest of a longer one is ignored)
MAX_HEADER_CHARS = 4096
#: a message is read up to this many bytes: the verdict lives in the top headers and the first
#: parts, and what makes a bounce large is the returned original's attachments
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
#: at most this many MIME parts are looked at in one message
MAX_PARTS = 64
#: at most this many message ids are taken from one header
MAX_IDS = 64

#: `<left@right>`: a message id as it stands in Message-ID, In-Reply-To and References
_MSG_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")

#: the content types that carry the original message or its headers in a report
RETURNED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
RETURNED_HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)


class _CappedPolicy(EmailPolicy):
    """`policy.default`, with every header value cut at MAX_HEADER_CHARS before it is parsed."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


#: the policy every message is read with (policy.default's settings, capped headers)
POLICY = _CappedPolicy()


def parse_message(raw: bytes) -> EmailMessage:
    """The message of `raw` (its first MAX_MESSAGE_BYTES), parsed with the capped policy."""
    parsed = BytesParser(policy=POLICY).parsebytes(raw[:MAX_MESSAGE_BYTES])
    assert isinstance(parsed, EmailMessage)
    return parsed


def header(message: Message, name: str) -> str:
    """The first `name` header of `message` as text (RFC 2047 decoded), or "" when absent.

    A value the header parser cannot read is taken as absent: one broken header must not hide
    the rest of the message (the verdict then rests on the others)."""
    try:
        value = message.get(name)
        return "" if value is None else str(value).strip()
    except Exception:  # the stdlib header parser has raised assorted errors on hostile input
        return ""


def header_values(message: Message, name: str) -> list[str]:
    """Every `name` header of `message` as text (see `header`)."""
    try:
        return [str(value).strip() for value in message.get_all(name) or []]
    except Exception:  # as in `header`
        return []


def message_ids(text: str) -> tuple[str, ...]:
    """The `<id>` message ids in `text`, in order, without repeats (at most MAX_IDS)."""
    found: list[str] = []
    for match in _MSG_ID.finditer(text):
        normalized = f"<{match.group(1)}>"
        if normalized not in found:
            found.append(normalized)
            if len(found) >= MAX_IDS:
                break
    return tuple(found)


def normalize_message_id(value: str) -> str | None:
    """`value` as `<left@right>` (brackets added when missing), or None when it is no id."""
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    ids = message_ids(value)
    return ids[0] if len(ids) == 1 and ids[0] == value else None


def single_address(value: str) -> str | None:
    """The one address in an address header value (`Name <a@b>` or `a@b`), else None."""
    try:
        pairs = getaddresses([value])
    except Exception:  # as in `header`: hostile address syntax
        return None
    addresses = [address.strip() for _, address in pairs if address.strip()]
    if len(addresses) != 1:
        return None
    local, at, domain = addresses[0].rpartition("@")
    return addresses[0] if at and local and domain else None


def typed_address(value: str) -> str | None:
    """The address of a DSN/ARF address field (`rfc822; user@example.com`, or a bare one)."""
    kind, semicolon, rest = value.partition(";")
    if semicolon and kind.strip().lower() not in {"rfc822", "utf-8"}:
        return None
    return single_address(rest if semicolon else value)


def parse_date(value: str) -> datetime | None:
    """A Date header as an aware datetime (UTC assumed for `-0000`), or None when unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parts(message: Message) -> Iterator[Message]:
    """The parts of `message` in order, the message itself first, at most MAX_PARTS: only
    multiparts are opened, so a returned original (message/rfc822) is one part, its own parts
    being the sender's, not the report's."""
    stack: list[Message] = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop(0)
        seen += 1
        yield part
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[:0] = [item for item in payload if isinstance(item, Message)]


def content_type(message: Message) -> str:
    """The content type of `message` in lower case (`text/plain` when unreadable)."""
    try:
        return message.get_content_type()
    except Exception:  # as in `header`
        return "text/plain"


def report_type(message: Message) -> str:
    """The `report-type` parameter of a `multipart/report`, lower case, or ""."""
    if content_type(message) != "multipart/report":
        return ""
    try:
        value = message.get_param("report-type", failobj="")
    except Exception:  # as in `header`
        return ""
    return value.strip().lower() if isinstance(value, str) else ""


def _text_of(part: Message) -> str:
    """The decoded text of a non-multipart part ("" when it has none or cannot be decoded)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def field_blocks(part: Message) -> list[Message]:
    """The blocks of header-like fields in a `message/delivery-status` or
    `message/feedback-report` part (also their `global` forms), in order."""
    blocks: list[Message] = []
    payload = part.get_payload()
    items = payload if isinstance(payload, list) else []
    if not items and isinstance(payload, str):
        return _blocks_from_text(_text_of(part))
    for item in items:
        if not isinstance(item, Message):
            continue
        blocks.append(item)
        # a message/* type the parser does not know is read as one message: its headers are
        # the first block and the rest of the blocks are its body
        rest = item.get_payload()
        if isinstance(rest, str) and rest.strip():
            blocks.extend(_blocks_from_text(rest))
    return blocks


def _blocks_from_text(text: str) -> list[Message]:
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    parser = HeaderParser(policy=POLICY)
    return [parser.parsestr(chunk) for chunk in chunks[:MAX_PARTS] if chunk.strip()]


def returned_headers(message: Message) -> Message | None:
    """The headers of the original a report returns (`message/rfc822` or
    `text/rfc822-headers` part), or None when it returns neither."""
    for part in parts(message):
        kind = content_type(part)
        if kind in RETURNED_MESSAGE_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif kind in RETURNED_HEADER_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list):  # a message/* type, parsed as a message
                return payload[0] if payload and isinstance(payload[0], Message) else None
            return HeaderParser(policy=POLICY).parsestr(_text_of(part), headersonly=True)
    return None
