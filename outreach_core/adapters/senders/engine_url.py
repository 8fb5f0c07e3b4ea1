"""Engine URLs: each kind's form, checked and turned into its provider's configuration.

    outbox:///path/to/folder
    smtp://[user[:password]@]host[:port][?tls=starttls|ssl|none]   (default starttls)
    smtps://[user[:password]@]host[:port]                           (implicit TLS)
    sendgrid://API_KEY@[?region=eu]
    mailgun://API_KEY@DOMAIN[?region=eu]
    ses://ACCESS_KEY_ID:SECRET_ACCESS_KEY@REGION                     (secret percent-encoded)

The HTTP kinds also take `endpoint=http(s)://host:port` to talk to a stand-in (tests, proxy).
Errors say what is wrong without repeating the secret; `mask_url` is the form shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from outreach_core.adapters.senders import mailgun, sendgrid, ses
from outreach_core.adapters.senders.http import endpoint_override
from outreach_core.adapters.senders.smtp import SmtpConfig, TlsMode
from outreach_core.errors import InputError

_DEFAULT_PORTS = {TlsMode.STARTTLS: 587, TlsMode.SSL: 465, TlsMode.NONE: 25}


@dataclass(frozen=True)
class EngineUrl:
    """A parsed engine URL: its kind, a display form with the secret masked, the raw URL."""

    kind: str
    display: str
    raw: str
    username: str | None


def _smtp_config(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"tls", "timeout"}
    if unknown:
        raise InputError(f"engine URL: unknown option {', '.join(sorted(unknown))}; known: tls")
    if parts.scheme == "smtps":
        tls = TlsMode.SSL
    else:
        tls = query.get("tls", TlsMode.STARTTLS).lower()
        if tls not in TlsMode.ALL:
            raise InputError(f"engine URL: tls={tls} is not one of {', '.join(TlsMode.ALL)}")
    if not parts.hostname:
        raise InputError("engine URL: an SMTP URL needs a host, e.g. smtp://mail.example.com:587")
    try:
        port = parts.port or _DEFAULT_PORTS[tls]
        timeout = float(query.get("timeout", 30))
    except ValueError as exc:
        raise InputError(f"engine URL: {exc}") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def _outbox_folder(url: str) -> Path:
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise InputError("engine URL: outbox needs a folder, e.g. outbox:///var/outreach/outbox")
    return Path(path)


def _query(url: str, *, known: set[str]) -> dict[str, str]:
    query = {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}
    unknown = set(query) - known
    if unknown:
        raise InputError(
            f"engine URL: unknown option {', '.join(sorted(unknown))}; known: "
            + ", ".join(sorted(known))
        )
    return query


def _region(query: dict[str, str], endpoints: dict[str, str]) -> str:
    region = query.get("region", "us").lower()
    if region not in endpoints:
        raise InputError(f"engine URL: region={region} is not one of {', '.join(endpoints)}")
    return endpoint_override(query, default=endpoints[region])


def _sendgrid_config(url: str) -> sendgrid.SendGridConfig:
    parts = urlsplit(url)
    query = _query(url, known={"region", "endpoint"})
    if not parts.username or parts.password is not None or parts.hostname:
        raise InputError("engine URL: SendGrid takes the API key only, e.g. sendgrid://KEY@")
    return sendgrid.SendGridConfig(
        api_key=unquote(parts.username), endpoint=_region(query, sendgrid.ENDPOINTS)
    )


def _mailgun_config(url: str) -> mailgun.MailgunConfig:
    parts = urlsplit(url)
    query = _query(url, known={"region", "endpoint"})
    if not parts.username or not parts.hostname:
        raise InputError(
            "engine URL: Mailgun needs the API key and the sending domain, "
            "e.g. mailgun://KEY@mg.example.com"
        )
    return mailgun.MailgunConfig(
        api_key=unquote(parts.username),
        domain=parts.hostname,
        endpoint=_region(query, mailgun.ENDPOINTS),
    )


def _ses_config(url: str) -> ses.SesConfig:
    parts = urlsplit(url)
    query = _query(url, known={"endpoint"})
    if not parts.username or not parts.password or not parts.hostname:
        raise InputError(
            "engine URL: SES needs access key id, secret and region, "
            "e.g. ses://AKIA...:SECRET@eu-west-1"
        )
    region = parts.hostname
    return ses.SesConfig(
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password),
        region=region,
        endpoint=endpoint_override(query, default=ses.default_endpoint(region)),
    )


def mask_url(url: str) -> str:
    """The URL with any password or API key replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme not in ("smtp", "smtps")):
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    credentials = f"{user}:***" if parts.password is not None else "***"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{credentials}@{host}{rest}"


def parse_engine_url(url: str) -> EngineUrl:
    """Check an engine URL; errors say what is wrong without repeating the secret."""
    kind, config = engine_config(url)
    username = config.username if isinstance(config, SmtpConfig) else None
    return EngineUrl(kind=kind, display=mask_url(url), raw=url, username=username)


def engine_config(url: str) -> tuple[str, object]:
    """The URL's kind and its provider's configuration, checked."""
    kind = urlsplit(url).scheme.lower()
    if kind not in _CONFIGS:
        raise InputError(
            f"engine URL: unknown kind {kind or '(none)'!r}; known: {', '.join(sorted(_CONFIGS))}"
        )
    return kind, _CONFIGS[kind](url)


_CONFIGS: dict[str, Callable[[str], object]] = {
    "mailgun": _mailgun_config,
    "outbox": _outbox_folder,
    "sendgrid": _sendgrid_config,
    "ses": _ses_config,
    "smtp": _smtp_config,
    "smtps": _smtp_config,
}
