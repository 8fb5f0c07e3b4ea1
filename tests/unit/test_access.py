"""Dashboard access decisions (the open dashboard's Host/Origin check, OIDC allowlist),
accounts from settings, password hashes and sign-in timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from outreach_core.domain.access import (
    AccessMode,
    OidcRefused,
    Role,
    User,
    access_mode,
    authenticate,
    hash_password,
    is_local,
    is_local_request,
    oidc_role,
    oidc_user,
    parse_accounts,
    parse_oidc_allowed,
    verify_password,
)
from outreach_core.errors import ConfigError


@pytest.mark.parametrize(
    ("address", "users", "oidc", "expected"),
    [
        ("127.0.0.1", False, False, AccessMode.OPEN),
        ("localhost", True, True, AccessMode.OPEN),  # loopback: never a login
        ("::1", False, False, AccessMode.OPEN),
        ("0.0.0.0", False, False, AccessMode.REFUSED),
        (None, False, False, AccessMode.REFUSED),  # unset = every interface
        ("", False, False, AccessMode.REFUSED),
        ("192.168.1.5", True, False, AccessMode.PASSWORD),
        ("0.0.0.0", True, True, AccessMode.OIDC),  # OIDC wins when both are configured
        ("127.0.0.2", False, False, AccessMode.REFUSED),  # not in the list: be strict
    ],
)
def test_access_mode_is_open_only_on_loopback(
    address: str | None, users: bool, oidc: bool, expected: AccessMode
) -> None:
    """Verify the decision table: open on loopback, otherwise a login or a refusal."""
    assert access_mode(address, has_users=users, has_oidc=oidc) is expected
    assert is_local(address) is (expected is AccessMode.OPEN)


@pytest.mark.parametrize("scheme", ["argon2", "scrypt"])
def test_hashes_verify_the_right_password_only(scheme: str) -> None:
    """Verify both hash schemes: the password matches, another does not, hashes are salted."""
    first = hash_password("correct horse", scheme=scheme)
    assert verify_password(first, "correct horse")
    assert not verify_password(first, "correct horsE")
    assert hash_password("correct horse", scheme=scheme) != first
    assert "correct horse" not in first


def test_broken_hashes_never_match() -> None:
    """Verify a malformed hash is a refusal, not an exception."""
    assert not verify_password("$argon2id$garbage", "x")
    assert not verify_password("scrypt$1$2$3$!!$!!", "x")
    assert not verify_password("plaintext", "plaintext")


def test_accounts_parse_and_authenticate() -> None:
    """Verify `name:role:hash` entries separated by ; or whitespace, and sign-in by them."""
    ann, vic = hash_password("pw-ann"), hash_password("pw-vic", scheme="scrypt")
    accounts = parse_accounts(f"ann:sender:{ann};\n vic:viewer:{vic}")
    assert set(accounts) == {"ann", "vic"}
    assert authenticate(accounts, "ann", "pw-ann") == User("ann", Role.SENDER)
    assert authenticate(accounts, "vic", "pw-vic") == User("vic", Role.VIEWER)
    assert authenticate(accounts, "vic", "pw-ann") is None
    assert authenticate(accounts, "nobody", "pw-ann") is None
    assert User("vic", Role.VIEWER).can(Role.VIEWER)
    assert not User("vic", Role.VIEWER).can(Role.SENDER)
    assert parse_accounts(None) == {} and parse_accounts("  ") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ann:admin:$argon2id$x", "role 'admin' is not viewer or sender"),
        ("ann:sender:hunter2", "not a password"),
        (":sender:$argon2id$x", "entry 1: the name"),
        ("ann:sender:$argon2id$x ann:viewer:$argon2id$y", "listed twice"),
    ],
)
def test_malformed_accounts_are_config_errors_without_the_secret(value: str, message: str) -> None:
    """Verify a bad entry names the setting and the entry, never echoing a password."""
    with pytest.raises(ConfigError, match="OUTREACH_DASHBOARD_USERS") as caught:
        parse_accounts(value)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_oidc_users_are_viewers_unless_listed_as_senders() -> None:
    """Verify OUTREACH_DASHBOARD_SENDERS decides an OIDC user's role (case-insensitive)."""
    assert oidc_role("Ann@Example.com", "ann@example.com, bob@example.com") is Role.SENDER
    assert oidc_role("eve@example.com", "ann@example.com") is Role.VIEWER
    assert oidc_role(None, "ann@example.com") is Role.VIEWER


PORT = 8501


@pytest.mark.parametrize(
    ("host", "origin", "local"),
    [
        ("127.0.0.1:8501", None, True),
        ("127.0.0.1:8501", "http://127.0.0.1:8501", True),
        ("localhost:8501", "http://localhost:8501", True),
        ("LOCALHOST:8501", "HTTP://LocalHost:8501", True),  # names are case-insensitive
        ("localhost.:8501", "http://localhost.:8501", True),  # the same name, fully qualified
        ("127.0.0.1", None, True),  # no port
        ("[::1]:8501", "http://[::1]:8501", True),
        ("[::1]", None, True),
        ("[0:0:0:0:0:0:0:1]:8501", None, True),  # ::1 written out
        ("127.0.0.1:8502", None, False),  # another port: another server's page
        ("127.0.0.1:8501", "http://localhost:3000", False),  # another local origin
        ("attacker.example:8501", None, False),  # DNS rebinding
        ("attacker.example:8501", "http://attacker.example:8501", False),
        ("127.0.0.1:8501", "http://attacker.example:8501", False),  # a proxy keeping Host
        ("127.0.0.1.nip.io:8501", None, False),  # resolves to 127.0.0.1, is not it
        ("localhost.attacker.example", None, False),
        ("localhost..:8501", None, False),
        ("127.0.0.2:8501", None, False),
        ("[::2]:8501", None, False),
        ("::1", None, False),  # not a Host without its brackets
        ("[::1:8501", None, False),
        ("user@127.0.0.1:8501", None, False),
        ("127.0.0.1:8501/x", None, False),
        ("127.0.0.1:http", None, False),
        ("127.0.0.1:", None, False),
        ("", None, False),
        (None, None, False),  # missing Host
        ("127.0.0.1:8501", "null", False),  # sandboxed frame or file:// page
        ("127.0.0.1:8501", "file://", False),
        ("127.0.0.1:8501", "http://127.0.0.1:8501/path", False),
        ("127.0.0.1:8501", "", False),
    ],
)
def test_only_requests_naming_this_machine_are_local(
    host: str | None, origin: str | None, local: bool
) -> None:
    """Verify the Host/Origin decision of the open dashboard: loopback names on its port."""
    assert is_local_request(host, origin, PORT) is local


def test_proxied_requests_are_never_local() -> None:
    """Verify a forwarded request is not local even when the proxy sends Host 127.0.0.1."""
    assert is_local_request("127.0.0.1:8501", None, PORT)
    assert not is_local_request("127.0.0.1:8501", None, PORT, proxied=True)


@pytest.mark.parametrize(
    ("users", "oidc", "expected"),
    [
        (False, False, AccessMode.REFUSED),
        (True, False, AccessMode.PASSWORD),
        (False, True, AccessMode.OIDC),
    ],
)
def test_a_foreign_request_to_the_open_dashboard_needs_a_login(
    users: bool, oidc: bool, expected: AccessMode
) -> None:
    """Verify loopback with a foreign Host gets the login if one is configured, else refusal."""
    mode = access_mode("127.0.0.1", has_users=users, has_oidc=oidc, local_request=False)
    assert mode is expected


def _seconds(attempt: Callable[[], object]) -> float:
    started = time.perf_counter()
    attempt()
    return time.perf_counter() - started


@pytest.mark.parametrize("scheme", ["argon2", "scrypt"])
def test_an_unknown_name_costs_as_much_as_a_wrong_password(scheme: str) -> None:
    """Verify sign-in timing does not tell which names exist: many interleaved attempts, the
    median of unknown names within 0.5-2x of that of wrong passwords."""
    accounts = parse_accounts(
        f"ann:sender:{hash_password('pw-ann', scheme=scheme)};"
        f"bob:viewer:{hash_password('pw-bob', scheme=scheme)}"
    )
    known: list[float] = []
    unknown: list[float] = []
    for number in range(15):  # interleaved, so load on the machine hits both alike
        known.append(_seconds(lambda: authenticate(accounts, "ann", "wrong")))
        unknown.append(_seconds(lambda n=number: authenticate(accounts, f"x{n}", "wrong")))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, (ratio, statistics.median(known), statistics.median(unknown))
    assert statistics.median(known) > 0.005  # the hash really ran (not a shortcut)
    assert authenticate(accounts, "nobody", "pw-ann") is None


def test_oidc_lets_in_only_listed_verified_emails() -> None:
    """Verify OUTREACH_OIDC_ALLOWED: a listed email or domain with a verified email is let in
    (senders by OUTREACH_DASHBOARD_SENDERS); unverified, unlisted and missing emails are not."""
    allowed = "ann@partner.org, @Example.com"
    claims = {"email": "Bob@example.com", "email_verified": True, "name": "Bob"}
    assert oidc_user(claims, allowed=allowed, senders=None) == User("bob@example.com", Role.VIEWER)
    assert oidc_user(
        {"email": "ann@partner.org", "email_verified": "true"},
        allowed=allowed,
        senders="ann@partner.org",
    ) == User("ann@partner.org", Role.SENDER)
    # A listed sender is let in without being in OUTREACH_OIDC_ALLOWED.
    assert oidc_user(
        {"email": "sam@other.net", "email_verified": True}, allowed=None, senders="sam@other.net"
    ) == User("sam@other.net", Role.SENDER)

    refusals = [
        ("has not verified", {"email": "bob@example.com", "email_verified": False}),
        ("has not verified", {"email": "bob@example.com"}),
        ("has not verified", {"email": "bob@example.com", "email_verified": "false"}),
        ("not allowed", {"email": "eve@evil.org", "email_verified": True}),
        ("not allowed", {"email": "eve@sub.example.com", "email_verified": True}),  # no subdomains
        ("not allowed", {"email": "eve@example.com.evil.org", "email_verified": True}),
        ("no email", {"name": "ann@partner.org", "email_verified": True}),  # no name fallback
    ]
    for reason, refused in refusals:
        with pytest.raises(OidcRefused, match=reason):
            oidc_user(refused, allowed=allowed, senders="ann@partner.org")
    with pytest.raises(OidcRefused, match="OUTREACH_OIDC_ALLOWED"):
        oidc_user({"email": "bob@example.com", "email_verified": True}, allowed=None, senders=None)


def test_the_sender_list_never_matches_the_name_claim() -> None:
    """Verify a user who sets their display name to a sender's email gets nothing of it."""
    claims = {"email": "eve@example.com", "email_verified": True, "name": "ann@example.com"}
    user = oidc_user(claims, allowed="@example.com", senders="ann@example.com")
    assert user == User("eve@example.com", Role.VIEWER)


@pytest.mark.parametrize("value", ["example.com", "ann@", "@nodot", "a@b@example.com"])
def test_malformed_oidc_allowed_entries_are_config_errors(value: str) -> None:
    """Verify an entry that is neither an email nor @domain is named in a ConfigError."""
    with pytest.raises(ConfigError, match="OUTREACH_OIDC_ALLOWED"):
        parse_oidc_allowed(value)
