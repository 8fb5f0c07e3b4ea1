"""Dashboard access decisions, accounts from settings and password hashes."""

from __future__ import annotations

import pytest

from outreach_core.domain.access import (
    AccessMode,
    Role,
    User,
    access_mode,
    authenticate,
    hash_password,
    is_local,
    oidc_role,
    parse_accounts,
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
