"""The run report's mail transport (smtplib): the TLS choices of an SMTP engine.

STARTTLS, implicit TLS or plaintext (`domain.smtp_security.report_transport` picks it from
the REPORT_SMTP_* settings, refusing plaintext to a host that is not loopback unless asked
for). Certificates are checked against the system's CAs or only those of REPORT_SMTP_CAFILE.
The login tries one mechanism, the next only when the server does not take that one. Every
failure becomes a `ReportMailError` whose message says what went wrong and what to set; none
holds the password.
"""

from __future__ import annotations

import smtplib
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage

from outreach_core.adapters.senders.smtp_tls import (
    TlsSetupError,
    client_context,
    describe_tls_failure,
)
from outreach_core.domain.smtp_security import AuthVerdict, TlsMode, auth_verdict

#: how a certificate refusal says to trust the report's server
TRUST_HINT = "set REPORT_SMTP_CAFILE=/path/to/ca.pem"
#: the mechanisms smtplib speaks, best first
_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


class ReportMailError(Exception):
    """The report could not be handed to its server; the message says why, without secrets."""


@dataclass(frozen=True)
class ReportSmtp:
    """Where the report goes and how. `password` is never printed."""

    host: str
    port: int
    tls: TlsMode
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = 30.0


def send_report(config: ReportSmtp, message: EmailMessage) -> None:
    """Hand `message` to the report's server; raises ReportMailError saying why not."""
    try:
        _send(config, message)
    except ReportMailError as exc:
        raise ReportMailError(_scrubbed(str(exc), config)) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise ReportMailError(_scrubbed(_describe(exc), config)) from None


def _send(config: ReportSmtp, message: EmailMessage) -> None:
    context = None
    if config.tls is not TlsMode.NONE:
        try:
            context = client_context(config.cafile, option="REPORT_SMTP_CAFILE")
        except TlsSetupError as exc:
            raise ReportMailError(str(exc)) from None
    smtp: smtplib.SMTP
    if config.tls is TlsMode.SSL:
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with smtp:
        if config.tls is TlsMode.STARTTLS:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise ReportMailError(
                    "the server does not offer STARTTLS; set REPORT_SMTP_TLS=ssl for implicit "
                    "TLS (usually port 465), or REPORT_SMTP_TLS=none to send in plaintext"
                )
            smtp.starttls(context=context)
        if config.user:
            _login(smtp, config)
        smtp.send_message(message)


def _login(smtp: smtplib.SMTP, config: ReportSmtp) -> None:
    """AUTH with the best mechanism both sides know; the next only when the server does not
    take that one (never again after a refused password)."""
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise ReportMailError(
            "the server offers no login (AUTH); unset REPORT_SMTP_USER, or use a server that "
            "takes one (over TLS)"
        )
    offered = smtp.esmtp_features["auth"].upper().split()
    mechanisms = [m for m in _MECHANISMS if m in offered]
    if not mechanisms:
        raise ReportMailError(
            f"the server offers login mechanisms ({' '.join(offered)[:80]}) of which none is "
            "supported here (CRAM-MD5, PLAIN, LOGIN)"
        )
    smtp.user, smtp.password = config.user or "", config.password or ""
    for mechanism in mechanisms:
        method = getattr(smtp, "auth_" + mechanism.lower().replace("-", "_"))
        try:
            smtp.auth(mechanism, method, initial_response_ok=True)
            return
        except smtplib.SMTPAuthenticationError as exc:
            verdict = auth_verdict(exc.smtp_code)
            if verdict is not AuthVerdict.NEXT_MECHANISM:
                said = _reply_text(exc.smtp_error)
                raise ReportMailError(
                    f"authentication failed ({exc.smtp_code} {said}): "
                    + (
                        "check REPORT_SMTP_USER and REPORT_SMTP_PASSWORD"
                        if verdict is AuthVerdict.BAD_CREDENTIALS
                        else "the server refused the login of REPORT_SMTP_USER"
                    )
                ) from None
    raise ReportMailError("the server took none of the login mechanisms it offers")


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:160]


def _describe(exc: BaseException) -> str:
    """One sentence for a transport failure (never a bare exception name)."""
    tls = describe_tls_failure(exc, trust_hint=TRUST_HINT)
    if tls is not None:
        return tls
    code = getattr(exc, "smtp_code", None)
    if code == 530:  # at MAIL, RCPT or DATA
        said = _reply_text(getattr(exc, "smtp_error", b""))
        return (
            f"the server requires TLS or a login first (530 {said}); set REPORT_SMTP_TLS="
            "starttls or ssl, and REPORT_SMTP_USER / REPORT_SMTP_PASSWORD if it asks for a login"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = "; ".join(
            f"{rcpt}: {code} {_reply_text(text)}" for rcpt, (code, text) in exc.recipients.items()
        )
        return f"the server refused the recipient ({replies}); check REPORT_EMAIL_TO"
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return (
            f"the server refused the sender ({exc.smtp_code} {_reply_text(exc.smtp_error)}); "
            "check REPORT_EMAIL_FROM"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server refused the report ({exc.smtp_code} {_reply_text(exc.smtp_error)})"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the server closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror}); check REPORT_SMTP_HOST"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time; check REPORT_SMTP_HOST, REPORT_SMTP_PORT and REPORT_SMTP_TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused; check REPORT_SMTP_HOST and REPORT_SMTP_PORT"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect ({exc.strerror})"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _scrubbed(text: str, config: ReportSmtp) -> str:
    """The text without the password, should a server ever have echoed it."""
    secret = config.password or ""
    return text.replace(secret, "***") if len(secret) >= 4 else text
