"""The unsubscribe mailbox's address: `OUTREACH_UNSUBSCRIBE_IMAP_URL` parsed and masked.

    imaps://user:password@host:993/INBOX          TLS from the first byte (default port 993)
    imap://user:password@host:143/INBOX?starttls=1  plain connection upgraded with STARTTLS
    imap://user:password@127.0.0.1:1143/INBOX     no TLS: only to a loopback host

User and password are percent-decoded (`unsub%40example.com`); the folder defaults to INBOX.
Errors and `display` never repeat the password.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

from outreach_core.errors import InputError

DEFAULT_FOLDER = "INBOX"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Security(StrEnum):
    """How the connection to the IMAP server is protected."""

    #: TLS from the first byte (imaps://, IMAP4_SSL)
    TLS = "tls"
    #: plain connection upgraded by STARTTLS before LOGIN (imap://…?starttls=1)
    STARTTLS = "starttls"
    #: no TLS at all: allowed only to a loopback host, where nothing crosses a network
    NONE = "none"


@dataclass(frozen=True)
class ImapMailbox:
    """Where unsubscribe requests are read from."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = DEFAULT_FOLDER
    security: Security = Security.TLS

    @property
    def display(self) -> str:
        """The URL with the password masked, for logs, errors and the CLI."""
        scheme = "imaps" if self.security is Security.TLS else "imap"
        query = "?starttls=1" if self.security is Security.STARTTLS else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{self.user}:***@{host}:{self.port}/{self.folder}{query}"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (localhost or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _starttls(query: str) -> bool:
    values = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(values) - {"starttls"})
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r} (known: starttls)")
    text = values.get("starttls", ["0"])[-1].lower()
    if text not in _TRUE + _FALSE:
        raise InputError(f"starttls={text!r}: use 1 or 0")
    return text in _TRUE


def parse_imap_url(url: str) -> ImapMailbox:
    """Check and parse the URL; an error says what to fix without repeating the password."""
    try:
        parts = urlsplit(url.strip())
        port_number = parts.port
    except ValueError:
        raise InputError(
            "not a URL like imaps://user:password@host:993/INBOX (is the port a number?)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("imap", "imaps"):
        raise InputError(f"scheme {scheme or '(none)'!r}: use imaps:// or imap://")
    if not parts.hostname:
        raise InputError("no host: use imaps://user:password@host:993/INBOX")
    if not parts.username or parts.password is None:
        raise InputError("no user or password: use imaps://user:password@host:993/INBOX")
    if parts.fragment:
        raise InputError("remove the #… part")
    user, password = unquote(parts.username), unquote(parts.password)
    if not (user.isascii() and password.isascii()):
        raise InputError("user and password must be ASCII (IMAP LOGIN sends them as such)")
    starttls = _starttls(parts.query)
    if scheme == "imaps":
        if starttls:
            raise InputError("imaps:// is TLS already; starttls=1 is for imap://")
        security = Security.TLS
    else:
        security = Security.STARTTLS if starttls else Security.NONE
    if security is Security.NONE and not is_loopback(parts.hostname):
        # the password would cross the network in clear text
        raise InputError(
            f"imap:// to {parts.hostname} sends the password unencrypted: use imaps:// or "
            "imap://…?starttls=1 (plain imap:// is only for a loopback host)"
        )
    folder = unquote(parts.path.lstrip("/")) or DEFAULT_FOLDER
    if not folder.isascii() or any(ch in folder for ch in '"\\\r\n'):
        # non-ASCII names need modified UTF-7 (RFC 3501 5.1.3); quotes would need escaping
        raise InputError(f"folder {folder!r}: use an ASCII name without quotes or backslashes")
    default_port = 993 if security is Security.TLS else 143
    return ImapMailbox(
        host=parts.hostname,
        port=port_number or default_port,
        user=user,
        password=password,
        folder=folder,
        security=security,
    )
