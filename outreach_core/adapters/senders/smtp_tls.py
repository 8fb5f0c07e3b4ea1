"""TLS for SMTP clients (engines and the run report): the verifying context, optionally from a
CA file of its own, and failures worded so a user knows what to do.

A connection's `cafile` replaces the system's CAs for that connection only: just the
certificates in that PEM file are trusted (a private CA, or a self-signed server certificate).
Without one the system's CAs apply (`SSL_CERT_FILE` / `SSL_CERT_DIR` change those for the
whole process). Certificates and host names are always checked.
"""

from __future__ import annotations

import ssl

from outreach_core.domain.smtp_security import certificate_advice


class TlsSetupError(ValueError):
    """The CA file cannot be used; the message names it and why."""


def client_context(cafile: str | None, *, option: str) -> ssl.SSLContext:
    """A client context that verifies the server; with `cafile`, trusting only that file's
    certificates. `option` names where the file was given (e.g. "the engine URL's cafile"),
    for the error."""
    if cafile is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise TlsSetupError(
            f"{option} {cafile} holds no PEM certificate ({exc.reason or exc}); give a PEM file "
            "(-----BEGIN CERTIFICATE-----) of the CA or of the server's certificate"
        ) from None
    except OSError as exc:
        raise TlsSetupError(
            f"{option} {cafile} cannot be read ({exc.strerror or exc}); give the path of a PEM "
            "file the sending process may read"
        ) from None


def verify_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate refusal behind `exc` (aiosmtplib wraps it), if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def describe_tls_failure(exc: BaseException, *, trust_hint: str) -> str | None:
    """A sentence for a failed TLS handshake, or None when `exc` is not one."""
    refused = verify_failure(exc)
    if refused is not None:
        message = refused.verify_message or str(refused.reason or "")
        return certificate_advice(message, trust_hint=trust_hint)
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLError):
            reason = current.reason or str(current)
            return f"the TLS handshake failed ({reason}); check that the port and tls mode match"
        current = current.__cause__
    return None
