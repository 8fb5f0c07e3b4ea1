"""Building the MIME message for one delivery.

Every header value passes through `header_safe`, so no value taken from a contacts file or a
template can end a header line and start another (header injection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from outreach_core.templating import Rendered

#: the header that carries our delivery id on every message
DELIVERY_HEADER = "X-Outreach-Delivery"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


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
    """A message ready for an engine, with its envelope."""

    delivery_id: int
    envelope_from: str
    recipient: str
    message: EmailMessage
    #: the rendered parts, for API engines that take subject and bodies as fields
    rendered: Rendered | None = None
    from_name: str = ""

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only travel with SMTPUTF8 (RFC 6531)."""
        return not (self.envelope_from + self.recipient).isascii()


def _mailbox(address: str, name: str) -> Address | str:
    if address.isascii():
        return Address(display_name=name, addr_spec=address)
    # email's Address refuses a non-ASCII local part; written out by hand, quoted, raw UTF-8.
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>' if name else address


def build_message(
    rendered: Rendered,
    *,
    sender: Sender,
    recipient: str,
    delivery_id: int,
    now: datetime,
) -> Outgoing:
    """multipart/alternative with whichever of text and HTML the template has.

    Addresses are expected in their sending form (IDN domains already in ASCII). A non-ASCII
    local part is written as raw UTF-8 under the SMTPUTF8 policy, never as an encoded-word,
    which RFC 2047 forbids inside an address.
    """
    recipient = header_safe(recipient)
    ascii_only = (recipient + sender.email).isascii()
    msg = EmailMessage() if ascii_only else EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = _mailbox(sender.email, header_safe(sender.name))
    msg["To"] = _mailbox(recipient, "")
    msg["Subject"] = header_safe(rendered.subject)
    msg["Date"] = format_datetime(now)
    domain = sender.email.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(idstring=f"outreach.{delivery_id}", domain=domain)
    msg[DELIVERY_HEADER] = str(delivery_id)
    if rendered.text is not None:
        msg.set_content(rendered.text, subtype="plain", cte="quoted-printable")
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(rendered.html or "", subtype="html", cte="quoted-printable")
    return Outgoing(
        delivery_id=delivery_id,
        envelope_from=sender.email,
        recipient=recipient,
        message=msg,
        rendered=rendered,
        from_name=header_safe(sender.name),
    )
