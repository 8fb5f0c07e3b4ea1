"""SMTP security decisions: what a refused login means, which hosts are loopback, how the run
report travels, what to do about an untrusted certificate."""

from __future__ import annotations

import pytest

from outreach_core.domain.smtp_security import (
    AuthVerdict,
    TlsMode,
    auth_failure_advice,
    auth_verdict,
    certificate_advice,
    is_loopback_host,
    report_transport,
)


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (535, AuthVerdict.BAD_CREDENTIALS),
        (454, AuthVerdict.TEMPORARY),
        (504, AuthVerdict.NEXT_MECHANISM),
        (534, AuthVerdict.NEXT_MECHANISM),
        (538, AuthVerdict.NEXT_MECHANISM),
        (530, AuthVerdict.REFUSED),
        (550, AuthVerdict.REFUSED),
        (421, AuthVerdict.REFUSED),
    ],
)
def test_only_a_mechanism_the_server_does_not_take_is_worth_the_next_one(
    code: int, verdict: AuthVerdict
) -> None:
    """Verify a wrong password (535) or a temporary failure (454) is never tried again with
    another mechanism, while 504/534/538 (this mechanism not taken) may go to the next."""
    assert auth_verdict(code) is verdict


def test_bad_credentials_advice_says_to_correct_the_engine_password() -> None:
    """Verify the advice for a 535 tells the user what to fix and that nothing was retried."""
    advice = auth_failure_advice(AuthVerdict.BAD_CREDENTIALS)
    assert "correct the password in the engine URL" in advice
    assert "resume the run" in advice and "No other login was tried" in advice
    assert "later" in auth_failure_advice(AuthVerdict.TEMPORARY)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("mail.localhost", True),
        ("10.0.0.5", False),
        ("192.0.2.10", False),
        ("mail.example.com", False),
        ("localhost.example.com", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_loopback_hosts_are_known_without_asking_dns(host: str, loopback: bool) -> None:
    """Verify loopback addresses and `localhost` names count, and no other name does (a name
    is never resolved to decide: the refusal happens before any connection)."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("host", "tls", "has_user", "expected"),
    [
        # asked for explicitly: taken as it is, plaintext included
        ("mail.example.com", "starttls", False, TlsMode.STARTTLS),
        ("mail.example.com", "SSL", True, TlsMode.SSL),
        ("mail.example.com", "none", False, TlsMode.NONE),
        ("127.0.0.1", "ssl", False, TlsMode.SSL),
        # unset: credentials always travel under STARTTLS; plaintext to loopback only
        ("mail.example.com", None, True, TlsMode.STARTTLS),
        ("127.0.0.1", None, True, TlsMode.STARTTLS),
        ("127.0.0.1", None, False, TlsMode.NONE),
        ("localhost", None, False, TlsMode.NONE),
    ],
)
def test_report_transport_is_the_one_asked_for_or_a_safe_default(
    host: str, tls: str | None, has_user: bool, expected: TlsMode
) -> None:
    """Verify the report's TLS: the setting when given, else STARTTLS with a user, plaintext to
    a loopback relay."""
    chosen = report_transport(host, tls, has_user=has_user)
    assert (chosen.tls, chosen.refusal) == (expected, None)


@pytest.mark.parametrize("host", ["mail.example.com", "192.0.2.10", "10.1.2.3"])
def test_report_in_plaintext_to_another_host_is_refused_unless_asked_for(host: str) -> None:
    """Verify the report (every recipient's outcome) is not sent unencrypted across the network
    by default: the refusal names the host and the three settings that would send it."""
    chosen = report_transport(host, None, has_user=False)
    assert chosen.tls is None and chosen.refusal is not None
    assert host in chosen.refusal and "REPORT_SMTP_TLS=starttls" in chosen.refusal
    assert "REPORT_SMTP_TLS=none" in chosen.refusal
    assert report_transport(host, "none", has_user=False).tls is TlsMode.NONE


def test_an_unknown_report_tls_is_refused_naming_the_variable() -> None:
    """Verify a mistyped REPORT_SMTP_TLS does not fall back to anything."""
    chosen = report_transport("127.0.0.1", "tls", has_user=False)
    assert chosen.tls is None
    assert chosen.refusal == "REPORT_SMTP_TLS='tls' is not one of starttls, ssl, none"


@pytest.mark.parametrize(
    "message", ["self-signed certificate", "unable to get local issuer certificate", ""]
)
def test_an_untrusted_certificate_says_how_to_trust_it(message: str) -> None:
    """Verify the advice for a self-signed or private-CA certificate names the way to trust
    it for this connection."""
    advice = certificate_advice(message, trust_hint="add ?cafile=/path/to/ca.pem to the URL")
    assert "not trusted" in advice and "add ?cafile=/path/to/ca.pem to the URL" in advice
    assert (message or "certificate verify failed") in advice


def test_a_name_mismatch_or_expiry_is_not_answered_with_cafile() -> None:
    """Verify a certificate for another name, or expired, gets its own advice (trusting a CA
    file would not help)."""
    mismatch = certificate_advice("IP address mismatch, certificate is not valid for '::1'.",
                                  trust_hint="CAFILE")  # fmt: skip
    assert "not for this host name" in mismatch and "CAFILE" not in mismatch
    expired = certificate_advice("certificate has expired", trust_hint="CAFILE")
    assert "validity period" in expired and "CAFILE" not in expired
