"""How an SMTP session is secured and what its failures mean: pure decisions, no sockets.

- `TlsMode`: STARTTLS, implicit TLS or plaintext; always chosen, never "upgrade if offered".
- `auth_verdict`: what one refused AUTH command means. Only a server that does not take that
  mechanism (504, 534, 538) is worth the next mechanism it offers; a refused user name or
  password (535) or any other refusal ends the login, and the engine with it for the run:
  repeating a wrong password gets accounts locked and addresses blocked.
- `report_transport`: which TLS the run report's mail travels with, or why it is refused
  (plaintext only when asked for, or to a loopback host).
- `certificate_advice`: what to do about a certificate the client does not trust.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum


class TlsMode(StrEnum):
    """How the connection is secured."""

    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


#: every mode, in the order errors list them
TLS_MODES = tuple(mode.value for mode in TlsMode)


class AuthVerdict(StrEnum):
    """What a refused AUTH command means for the login."""

    #: the server does not take this mechanism (or not this way): the next one may do
    NEXT_MECHANISM = "next_mechanism"
    #: the user name or password is wrong: no other attempt, anywhere, in this run
    BAD_CREDENTIALS = "bad_credentials"
    #: the server could not check them now (454): still no other attempt in this run
    TEMPORARY = "temporary"
    #: refused for another reason (530, 550, ...)
    REFUSED = "refused"


#: RFC 4954 504: mechanism not supported; 534: mechanism too weak; 538: encryption required
#: for this mechanism. The next mechanism the server offers may be taken.
_NEXT_MECHANISM = frozenset({504, 534, 538})


def auth_verdict(code: int) -> AuthVerdict:
    """Class the reply to one AUTH command (RFC 4954 section 6)."""
    if code in _NEXT_MECHANISM:
        return AuthVerdict.NEXT_MECHANISM
    if code == 535:
        return AuthVerdict.BAD_CREDENTIALS
    if code == 454:
        return AuthVerdict.TEMPORARY
    return AuthVerdict.REFUSED


_ADVICE = {
    AuthVerdict.BAD_CREDENTIALS: (
        "the server refused the user name or password; correct the password in the engine "
        "URL (Engines page, or the URL `send` reads), then resume the run. No other login "
        "was tried, so the account is not locked by repeated attempts"
    ),
    AuthVerdict.TEMPORARY: (
        "the server could not check the credentials just now; resume the run later (no "
        "other login was tried)"
    ),
    AuthVerdict.NEXT_MECHANISM: (
        "the server accepts none of the login mechanisms it offers for these credentials; "
        "ask its administrator which one to use"
    ),
    AuthVerdict.REFUSED: (
        "the server refused the login; check the engine's user name and password and "
        "whether the account may send through this server, then resume the run"
    ),
}


def auth_failure_advice(verdict: AuthVerdict) -> str:
    """What the user should do after a login failure of this kind."""
    return _ADVICE[verdict]


def is_loopback_host(host: str) -> bool:
    """Whether `host` is this machine without asking DNS: `localhost` (and names under it,
    RFC 6761) or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ReportTransport:
    """How the run report travels: a TLS mode, or the reason it is not sent at all."""

    tls: TlsMode | None
    refusal: str | None = None


def report_transport(host: str, tls: str | None, *, has_user: bool) -> ReportTransport:
    """The TLS of the report's mail from REPORT_SMTP_TLS (`tls`, None when unset).

    Set: that mode, plaintext included (asked for explicitly). Unset: STARTTLS when there is a
    user (credentials never travel in plaintext), plaintext to a loopback host (a local relay),
    and otherwise a refusal: the report lists every recipient and would cross the network
    unencrypted.
    """
    if tls is not None:
        mode = tls.strip().lower()
        if mode not in TLS_MODES:
            return ReportTransport(
                None, f"REPORT_SMTP_TLS={tls[:20]!r} is not one of {', '.join(TLS_MODES)}"
            )
        return ReportTransport(TlsMode(mode))
    if has_user:
        return ReportTransport(TlsMode.STARTTLS)
    if is_loopback_host(host):
        return ReportTransport(TlsMode.NONE)
    return ReportTransport(
        None,
        f"REPORT_SMTP_HOST {host} is not a loopback host and REPORT_SMTP_TLS is not set, so "
        "the report (every recipient's outcome) would travel unencrypted; set "
        "REPORT_SMTP_TLS=starttls (port 587) or ssl (port 465), or REPORT_SMTP_TLS=none to "
        "send it in plaintext anyway",
    )


def certificate_advice(verify_message: str, *, trust_hint: str) -> str:
    """What to do about a certificate the TLS client refused, from OpenSSL's verify message
    (`verify_message`, e.g. "self-signed certificate"); `trust_hint` says how to name a CA
    file for this connection (e.g. "add ?cafile=/path/to/ca.pem to the engine URL")."""
    text = verify_message.strip() or "certificate verify failed"
    lowered = text.lower()
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return (
            f"the server's certificate is not for this host name ({text}); connect by a name "
            "the certificate lists"
        )
    if "expired" in lowered or "not yet valid" in lowered:
        return f"the server's certificate is out of its validity period ({text})"
    return (
        f"the server's certificate is not trusted ({text}); if it is signed by a private CA or "
        f"is self-signed, {trust_hint} (a PEM file of the CA or of the certificate itself)"
    )
