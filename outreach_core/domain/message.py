"""Building the MIME message for one delivery.

Every header value passes through `header_safe`, so no value taken from a contacts file or a
template can end a header line and start another (header injection).

Messages are written straight to bytes (CRLF, quoted-printable parts, RFC 2047 encoded words
for non-ASCII text): `email.message.EmailMessage` costs about 1.3 ms per message and would
dominate the send path. A message with a non-ASCII local part (SMTPUTF8) is written the same
way, only its From/To address as raw UTF-8 (RFC 6532): every other header is the same bytes as
for an ASCII address, so List-Unsubscribe stays plain ASCII (its URL carries the address
percent-encoded) and is never turned into encoded words, which RFC 2369 parsers do not read.
"""

from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from outreach_core.domain.templating import Rendered

#: the header that carries our delivery id on every message
DELIVERY_HEADER = "X-Outreach-Delivery"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_CRLF = b"\r\n"


def header_safe(value: str) -> str:
    """The value with every control character (CR and LF above all) folded into one space."""
    return _CONTROL.sub(" ", value).strip()


@dataclass(frozen=True)
class Sender:
    """The From of a message."""

    email: str
    name: str = ""


@dataclass(frozen=True)
class Outgoing:
    """A message ready for an engine: its wire bytes (CRLF) and its envelope."""

    delivery_id: int
    envelope_from: str
    recipient: str
    data: bytes
    message_id: str
    subject: str = ""
    #: the rendered parts, for API engines that take subject and bodies as fields
    rendered: Rendered | None = None
    from_name: str = ""
    #: headers beyond From/To/Subject/Date/Message-ID/MIME (our id, List-Unsubscribe, ...)
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> EmailMessage:
        """The bytes parsed back (for inspection; engines send `data`)."""
        parsed = message_from_bytes(self.data, policy=policy.SMTPUTF8)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only travel with SMTPUTF8 (RFC 6531)."""
        return not (self.envelope_from + self.recipient).isascii()


#: RFC 5322 section 2.1.1: a line SHOULD hold at most 78 characters and MUST hold at most 998
FOLD_AT, MAX_LINE_OCTETS = 78, 998
#: headers whose value is free text (RFC 2047 encoded words allowed): a word too long to fold at
#: a space may be cut into encoded words. Structured headers (List-Unsubscribe, Message-ID)
#: must keep their syntax, so they are never encoded.
_UNSTRUCTURED = frozenset({"subject"})


def _fold_ascii(name: str, value: str) -> str:
    """`Name: value` folded at spaces before FOLD_AT where a space allows, lines joined by CRLF.

    The first word always stays on the header's first line: a value that is one long word
    (a Message-ID) is one line of up to 998 characters, never `Message-ID:` followed by an
    empty-looking line and the id on the next (legal, but naive parsers then read the id with
    a leading space).
    """
    lines: list[str] = []
    line = f"{name}:"
    first = True
    for word in value.split(" "):
        if word and not first and len(line) + 1 + len(word) > FOLD_AT:
            lines.append(line)
            line = f" {word}"
        else:
            line = f"{line} {word}"
        first = first and not word
    lines.append(line)
    return "\r\n".join(lines)


def _header(name: str, value: str) -> bytes:
    """`Name: value` folded at 78, non-ASCII as RFC 2047 encoded words, CRLF-terminated.

    An ASCII value is folded at spaces, its first word on the first line (`_fold_ascii`).
    Free text (the Subject) that is not ASCII, or has a word too long to fold at a space, is
    written as UTF-8 encoded words, which may be cut anywhere, so no line grows past 78
    characters however long the subject is.
    """
    if value.isascii() and "=?" not in value:
        if len(name) + 2 + len(value) <= FOLD_AT:
            return f"{name}: {value}\r\n".encode("ascii")
        folded = _fold_ascii(name, value)
        lines = folded.split("\r\n")
        if name.lower() not in _UNSTRUCTURED or all(len(part) <= FOLD_AT for part in lines):
            if any(len(part) > MAX_LINE_OCTETS for part in lines):
                # a structured value with a word of 998+ characters cannot be written legally
                raise ValueError(
                    f"{name}: a word of the value is longer than {MAX_LINE_OCTETS} characters"
                )
            return f"{folded}\r\n".encode("ascii")
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    line = f"{name}: {encoded}\r\n".encode("ascii")
    if any(len(part) > MAX_LINE_OCTETS for part in line.split(_CRLF)):
        raise ValueError(f"{name}: a word of the value is longer than {MAX_LINE_OCTETS} characters")
    return line


def new_message_id(delivery_id: int, domain: str) -> str:
    """`<outreach.42.<16 random characters>@domain>`: unique (the delivery id and 96 random
    bits) and short, so `Message-ID: <…>` fits one 78-character line for most domains."""
    return f"<outreach.{delivery_id}.{secrets.token_urlsafe(12)}@{domain}>"


def _from_header(sender: Sender) -> bytes:
    name = header_safe(sender.name)
    if not name:
        return f"From: {sender.email}\r\n".encode("ascii")
    return f"From: {formataddr((name, sender.email), charset='utf-8')}\r\n".encode("ascii")


def _qp_part(content_type: str, body: str) -> bytes:
    text = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(text, quotetabs=False, istext=True, header=False)
    if not encoded.endswith(b"\n"):
        encoded += b"\n"
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + encoded.replace(b"\n", _CRLF)


def _body(rendered: Rendered) -> bytes:
    parts = []
    if rendered.text is not None:
        parts.append(_qp_part("text/plain", rendered.text))
    if rendered.html is not None or not parts:
        parts.append(_qp_part("text/html", rendered.html or ""))
    if len(parts) == 1:
        return b"MIME-Version: 1.0\r\n" + parts[0]
    # "=_" cannot occur in quoted-printable text (it would be "=3D_"), so the boundary is safe.
    boundary = f"=_outreach_{secrets.token_hex(12)}"
    out = [
        b"MIME-Version: 1.0\r\n",
        _header("Content-Type", f'multipart/alternative; boundary="{boundary}"') + _CRLF,
    ]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii"))
        out.append(part)
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def _utf8_mailbox(address: str, name: str) -> str:
    """An address with a non-ASCII local part as raw UTF-8 (RFC 6532); email's Address refuses
    one. The display name is quoted, also raw UTF-8."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>' if name else address


def _address_lines(sender: Sender, recipient: str) -> bytes:
    """From and To; raw UTF-8 where an address is not ASCII (the message then needs SMTPUTF8)."""
    if sender.email.isascii():
        from_line = _from_header(sender)
    else:
        from_line = f"From: {_utf8_mailbox(sender.email, header_safe(sender.name))}\r\n".encode()
    return from_line + f"To: {recipient}\r\n".encode()


def build_message(
    rendered: Rendered,
    *,
    sender: Sender,
    recipient: str,
    delivery_id: int,
    now: datetime,
    extra_headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> Outgoing:
    """multipart/alternative (text first) with whichever of text and HTML the template has.

    Addresses are expected in their sending form (IDN domains already in ASCII). A non-ASCII
    local part is written as raw UTF-8 (RFC 6532, sent with SMTPUTF8), never as an encoded-word,
    which RFC 2047 forbids inside an address. `extra_headers` are added after our own.
    `message_id` is the Message-ID to carry, for a resend of a message that may have gone out
    (a mailbox can then tell the copy); a new one by default.
    """
    recipient = header_safe(recipient)
    subject = header_safe(rendered.subject)
    domain = sender.email.rpartition("@")[2] or "localhost"
    message_id = header_safe(message_id or "") or new_message_id(delivery_id, domain)
    extra = {DELIVERY_HEADER: str(delivery_id)}
    extra.update({k: header_safe(v) for k, v in (extra_headers or {}).items()})
    headers = {
        "Subject": subject,
        "Date": format_datetime(now),
        "Message-ID": message_id,
        **extra,
    }
    data = b"".join(
        [
            _address_lines(sender, recipient),
            *(_header(name, value) for name, value in headers.items()),
            _body(rendered),
        ]
    )
    return Outgoing(
        delivery_id=delivery_id,
        envelope_from=sender.email,
        recipient=recipient,
        data=data,
        message_id=message_id,
        subject=subject,
        rendered=rendered,
        from_name=header_safe(sender.name),
        extra_headers=extra,
    )
