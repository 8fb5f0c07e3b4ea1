"""Engine URLs: each kind's form, checked and turned into its provider's configuration.

    outbox:///path/to/folder
    smtp://[user[:password]@]host[:port][?tls=starttls|ssl|none][&timeout=S][&cafile=/ca.pem]
    smtps://[user[:password]@]host[:port][?timeout=S][&cafile=/ca.pem]   (implicit TLS)

SMTP options: `tls` (default starttls), `timeout` (seconds per server reply, default 30) and
`cafile` (an absolute path to a PEM file whose certificates alone are trusted for this engine:
a private CA or a self-signed server certificate).
    sendgrid://API_KEY@[?region=eu]
    mailgun://API_KEY@DOMAIN[?region=eu]
    ses://ACCESS_KEY_ID:SECRET_ACCESS_KEY@REGION

The HTTP kinds also take `endpoint=http(s)://host:port` to talk to a stand-in (tests, proxy).

The credentials run from `://` to the LAST `@` (a host never holds one), so a password may
hold `@`, `#`, `/` or `?` as typed. Only when that cannot be told apart from a host followed by
a path, query or fragment (an `@` before the first of `/ ? #`) is the URL refused, asking for
the password percent-encoded. User and password are percent-decoded.

Errors say what is wrong and never repeat any part of the URL a secret may sit in (not even
an unknown option's name or a port that is not a number); `mask_url` is the form shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import get_close_matches
from math import isfinite
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from outreach_core.adapters.senders import mailgun, sendgrid, ses
from outreach_core.adapters.senders.http import endpoint_override
from outreach_core.adapters.senders.smtp import SmtpConfig
from outreach_core.adapters.url_secrets import (
    DELIMITERS,
    KEY_ONLY_SCHEMES,
    mask_url,
    split_credentials,
)
from outreach_core.domain.smtp_security import TLS_MODES, TlsMode
from outreach_core.errors import InputError

__all__ = ["ENCODE_HINT", "EngineUrl", "engine_config", "mask_url", "parse_engine_url"]

_DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.SSL: 465, TlsMode.NONE: 25}
#: what every refusal that may concern the password suggests
ENCODE_HINT = (
    "percent-encode the password: @ -> %40, # -> %23, / -> %2F, ? -> %3F, : -> %3A, % -> %25"
)
_HOST = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$")
_KIND = re.compile(r"^[a-z][a-z0-9+.-]{0,19}$")
_NAMES = {"smtp": "SMTP", "smtps": "SMTP", "sendgrid": "SendGrid", "mailgun": "Mailgun"}


@dataclass(frozen=True)
class EngineUrl:
    """A parsed engine URL: its kind, a display form with the secret masked, the raw URL."""

    kind: str
    display: str
    raw: str = field(repr=False)
    username: str | None


@dataclass(frozen=True)
class _Parts:
    """An engine URL split by the rules above; user and password decoded."""

    kind: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    host: str = ""
    port: int | None = None
    query: dict[str, str] = field(default_factory=dict)
    #: whether the options may be repeated in an error: not when the URL has no `@` but a
    #: `user:password`-like start, where a mistyped password may have become an option
    echo: bool = True

    def option(self, name: str, value: str) -> str:
        """`name=value` as an error may show it (`name` alone when it may not)."""
        return f"{name}={value[:40]}" if self.echo else name


def _refuse(what: str) -> InputError:
    return InputError(f"engine URL: {what}")


def _port(text: str, *, credentials: bool) -> int:
    # never echoed: without an `@`, `user:password` reads as host and port
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        hint = "" if credentials else f" (a password goes in user:password@host; {ENCODE_HINT})"
        raise _refuse(f"the port must be a number from 1 to 65535{hint}")
    return int(text)


def _split(url: str, kind: str, *, known: set[str]) -> _Parts:
    """Split the URL; refuse what cannot be read without guessing where the secret ends."""
    _, userinfo, rest = split_credentials(url)
    username = password = None
    if userinfo is not None:
        first = min((i for i in map(userinfo.find, DELIMITERS) if i >= 0), default=-1)
        user = userinfo.partition(":")[0]
        if (first >= 0 and "@" in userinfo[:first]) or (
            kind not in KEY_ONLY_SCHEMES and any(c in user for c in DELIMITERS)
        ):
            raise _refuse(
                "cannot tell where the credentials end (an '@' or a user name before "
                f"'/', '?' or '#'); {ENCODE_HINT}"
            )
        user_text, _, password_text = userinfo.partition(":")
        username = unquote(user_text) if user_text else None
        password = unquote(password_text) if password_text else None
        if kind in KEY_ONLY_SCHEMES:  # the whole userinfo is the key
            username, password = (unquote(userinfo) or None), None
    if "#" in rest:
        raise _refuse(
            "engine URLs take no '#' after the host; if it belongs to the password, " + ENCODE_HINT
        )
    authority, question, query_text = rest.partition("?")
    authority, _, path = authority.partition("/")
    if path:  # a trailing "/" alone is harmless
        raise _refuse(
            f"{_NAMES.get(kind, kind.upper())} URLs take no path after the host; if a '/' "
            f"belongs to the password, {ENCODE_HINT}"
        )
    host, has_port, port_text = authority, False, ""
    if authority.startswith("["):
        host, _, after = authority.partition("]")
        host += "]"
        if after and not after.startswith(":"):
            raise _refuse("the host is not a valid host name or address")
        has_port, port_text = bool(after), after[1:]
    elif ":" in authority:
        host, _, port_text = authority.partition(":")
        has_port = True
    port = _port(port_text, credentials=userinfo is not None) if has_port else None
    if host and not _HOST.match(host):
        raise _refuse("the host is not a valid host name or address")
    query = {key: values[-1] for key, values in parse_qs(query_text).items()} if question else {}
    echo = userinfo is not None or not has_port
    unknown = sorted(set(query) - known)
    if unknown:
        guess = get_close_matches(unknown[0].lower(), sorted(known), n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        name = f" {unknown[0][:40]!r}" if echo else ""
        known_text = ", ".join(sorted(known)) or "none"
        raise _refuse(f"unknown option{name}{hint}; this kind takes: {known_text}")
    return _Parts(kind, username, password, host.strip("[]").lower(), port, query, echo)


def _smtp_config(url: str) -> SmtpConfig:
    kind = url.partition("://")[0].lower()
    known = {"timeout", "cafile"} if kind == "smtps" else {"tls", "timeout", "cafile"}
    parts = _split(url, kind, known=known)
    tls = TlsMode.SSL if kind == "smtps" else parts.query.get("tls", TlsMode.STARTTLS).lower()
    if tls not in TLS_MODES:
        raise _refuse(f"{parts.option('tls', tls)} is not one of {', '.join(TLS_MODES)}")
    if not parts.host:
        raise _refuse("an SMTP URL needs a host, e.g. smtp://mail.example.com:587")
    try:
        timeout = float(parts.query.get("timeout", 30))
    except ValueError:
        timeout = -1.0
    if not (isfinite(timeout) and timeout > 0):
        raise _refuse("timeout must be a number of seconds above 0, e.g. timeout=30")
    return SmtpConfig(
        host=parts.host,
        port=parts.port or _DEFAULT_PORTS[TlsMode(tls)],
        tls=tls,
        username=parts.username,
        password=parts.password,
        timeout=timeout,
        cafile=_cafile(parts, tls),
    )


def _cafile(parts: _Parts, tls: str) -> str | None:
    """The `cafile` option: an absolute path, for a TLS mode (read when the engine opens)."""
    cafile = parts.query.get("cafile")
    if cafile is None:
        return None
    if tls == TlsMode.NONE:
        raise _refuse("cafile applies to TLS only; drop it or use tls=starttls or tls=ssl")
    if not cafile.startswith("/"):
        raise _refuse(
            f"{parts.option('cafile', cafile)} must be an absolute path to a PEM file, "
            "e.g. cafile=/etc/ssl/private-ca.pem"
        )
    return cafile


def _outbox_folder(url: str) -> Path:
    parts = urlsplit(url)  # a folder holds no secret: the standard reading
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise _refuse("outbox needs a folder, e.g. outbox:///var/outreach/outbox")
    return Path(path)


def _region(parts: _Parts, endpoints: dict[str, str]) -> str:
    region = parts.query.get("region", "us").lower()
    if region not in endpoints:
        raise _refuse(f"{parts.option('region', region)} is not one of {', '.join(endpoints)}")
    return endpoint_override(parts.query, default=endpoints[region])


def _sendgrid_config(url: str) -> sendgrid.SendGridConfig:
    parts = _split(url, "sendgrid", known={"region", "endpoint"})
    if not parts.username or ":" in parts.username or parts.host or parts.port:
        raise _refuse("SendGrid takes the API key only, e.g. sendgrid://KEY@")
    return sendgrid.SendGridConfig(
        api_key=parts.username, endpoint=_region(parts, sendgrid.ENDPOINTS)
    )


def _mailgun_config(url: str) -> mailgun.MailgunConfig:
    parts = _split(url, "mailgun", known={"region", "endpoint"})
    if not parts.username or ":" in parts.username or not parts.host or parts.port:
        raise _refuse(
            "Mailgun needs the API key and the sending domain, e.g. mailgun://KEY@mg.example.com"
        )
    return mailgun.MailgunConfig(
        api_key=parts.username,
        domain=parts.host,
        endpoint=_region(parts, mailgun.ENDPOINTS),
    )


def _ses_config(url: str) -> ses.SesConfig:
    parts = _split(url, "ses", known={"endpoint"})
    if not parts.username or not parts.password or not parts.host or parts.port:
        raise _refuse(
            "SES needs access key id, secret and region, e.g. ses://AKIA...:SECRET@eu-west-1"
        )
    return ses.SesConfig(
        access_key=parts.username,
        secret_key=parts.password,
        region=parts.host,
        endpoint=endpoint_override(parts.query, default=ses.default_endpoint(parts.host)),
    )


def parse_engine_url(url: str) -> EngineUrl:
    """Check an engine URL; errors say what is wrong without repeating the secret."""
    kind, config = engine_config(url)
    username = config.username if isinstance(config, SmtpConfig) else None
    return EngineUrl(kind=kind, display=mask_url(url), raw=url, username=username)


def engine_config(url: str) -> tuple[str, object]:
    """The URL's kind and its provider's configuration, checked."""
    kind, sep, _ = url.partition("://")
    kind = kind.lower()
    if not sep or kind not in _CONFIGS:
        # the kind is named only when it looks like one: a bare `user:password@host` does not
        named = f"{kind!r}" if sep and _KIND.match(kind) else "(none)"
        raise _refuse(
            f"unknown kind {named}; known: {', '.join(sorted(_CONFIGS))} (KIND://…, "
            "e.g. smtp://user:password@mail.example.com:587)"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        # a line break would forge log lines; the password may hold one only encoded
        raise _refuse("control characters (line breaks, tabs) are not allowed; " + ENCODE_HINT)
    return kind, _CONFIGS[kind](url)


_CONFIGS: dict[str, Callable[[str], object]] = {
    "mailgun": _mailgun_config,
    "outbox": _outbox_folder,
    "sendgrid": _sendgrid_config,
    "ses": _ses_config,
    "smtp": _smtp_config,
    "smtps": _smtp_config,
}
