"""Who may use the dashboard: the decision (open, password, OIDC, refused), the users from
settings and their password hashes. No streamlit here; `outreach_core.ui.auth` draws it.

The dashboard is open only when it listens on loopback: anyone who can reach another address
would otherwise get SMTP passwords and SQL sources. `OUTREACH_DASHBOARD_USERS` holds
`name:role:hash` entries separated by `;` or whitespace (an argon2 hash holds commas);
`python -m outreach_core hash-password` prints a hash.

Open also means "to a browser on this machine only": a request whose Host (or Origin) names
another host came through a reverse proxy or from a web page whose name resolves to this
machine (DNS rebinding), so it is treated like a request from another machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from outreach_core.errors import ConfigError

#: addresses Streamlit can listen on that only this machine reaches
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
#: the user name recorded in the audit log when the dashboard is local and open
LOCAL_USER = "local"
#: hashlib.scrypt parameters for `scrypt$` hashes (n=2**14, r=8, p=1: ~16 MiB, ~50 ms)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,100}")
_PORT = re.compile(r"[0-9]{1,5}")
#: headers a reverse proxy adds: their presence means the browser is not on this machine
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


class Role(StrEnum):
    """What a dashboard user may do."""

    #: sees every page; changes nothing
    VIEWER = "viewer"
    #: edits audiences, templates, engines, the suppression list; sends
    SENDER = "sender"


class AccessMode(StrEnum):
    """How the dashboard lets people in."""

    #: bound to loopback: no login
    OPEN = "open"
    #: name and password checked against OUTREACH_DASHBOARD_USERS
    PASSWORD = "password"
    #: st.login with the [auth] section of .streamlit/secrets.toml
    OIDC = "oidc"
    #: reachable from other machines and no login configured: nothing is served
    REFUSED = "refused"


@dataclass(frozen=True)
class User:
    """A signed-in user (or the local user of an open dashboard)."""

    name: str
    role: Role

    def can(self, role: Role) -> bool:
        return self.role is Role.SENDER or role is Role.VIEWER


@dataclass(frozen=True)
class Account:
    """One entry of OUTREACH_DASHBOARD_USERS."""

    name: str
    role: Role
    password_hash: str


def is_local(address: str | None) -> bool:
    """Whether Streamlit's server.address keeps the dashboard on this machine (unset means
    every interface, so it is not local)."""
    return bool(address) and str(address).strip().lower() in LOCAL_ADDRESSES


def _is_local_authority(authority: str, port: int | None) -> bool:
    """Whether `host[:port]` names this machine (127.0.0.1, localhost, [::1]; any case, one
    trailing dot) on the dashboard's port or with no port."""
    text = authority.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        try:
            if not bracket or ipaddress.IPv6Address(name) != ipaddress.IPv6Address("::1"):
                return False
        except ValueError:
            return False
    else:
        # An unbracketed IPv6 address splits at its first colon and is refused: not a Host.
        name, colon, number = text.partition(":")
        rest = colon + number
        if name.removesuffix(".") not in {"127.0.0.1", "localhost"}:
            return False
    if not rest:
        return True
    number = rest.removeprefix(":")
    if rest == number or not _PORT.fullmatch(number):
        return False
    return port is None or int(number) == port


def is_local_request(
    host: str | None, origin: str | None, port: int | None, *, proxied: bool = False
) -> bool:
    """Whether a request came from a browser on this machine: its Host names 127.0.0.1,
    localhost or [::1] on `port` (or no port), and so does its Origin when it has one.

    A missing Host, an Origin of `null` or of another scheme, and a request a proxy forwarded
    (`proxied`: one of PROXY_HEADERS present) are not local. A web page on another name that
    resolves to 127.0.0.1 sends its own name as Host and Origin, which is what this refuses.
    """
    if proxied or host is None or not _is_local_authority(host, port):
        return False
    if origin is None:
        return True
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in {"http", "https"} or not authority or "/" in authority:
        return False
    return _is_local_authority(authority, port)


def access_mode(
    address: str | None, *, has_users: bool, has_oidc: bool, local_request: bool = True
) -> AccessMode:
    """The decision: open on loopback to a local request; otherwise OIDC if configured, then
    passwords, else refuse."""
    if is_local(address) and local_request:
        return AccessMode.OPEN
    if has_oidc:
        return AccessMode.OIDC
    if has_users:
        return AccessMode.PASSWORD
    return AccessMode.REFUSED


REFUSED_HELP = (
    "This dashboard listens on {address}, which other machines can reach, and no login is "
    "configured, so it serves no page. Either bind it to this machine only "
    '(`server.address = "127.0.0.1"` in .streamlit/config.toml), or set '
    "OUTREACH_DASHBOARD_USERS to `name:role:hash` entries (role viewer or sender; make a hash "
    "with `python -m outreach_core hash-password`), or add an [auth] section for OIDC to "
    ".streamlit/secrets.toml. Then restart the dashboard."
)

FOREIGN_HOST_HELP = (
    "Without a login this dashboard serves only a browser on this machine, at "
    "http://127.0.0.1:{port}/ or http://localhost:{port}/. This request names another host "
    "(it came through a reverse proxy, or from a web page whose name points at this machine), "
    "so no page is served. Open http://127.0.0.1:{port}/ on this machine; to use the dashboard "
    "through a proxy, configure a login: OUTREACH_DASHBOARD_USERS (`name:role:hash` entries, "
    "hashes from `python -m outreach_core hash-password`) or an [auth] section for OIDC in "
    ".streamlit/secrets.toml with OUTREACH_OIDC_ALLOWED, then restart the dashboard."
)


def parse_accounts(value: str | None) -> dict[str, Account]:
    """OUTREACH_DASHBOARD_USERS parsed; a malformed entry is a ConfigError naming it (without
    its hash)."""
    accounts: dict[str, Account] = {}
    for number, entry in enumerate(filter(None, re.split(r"[;\s]+", value or "")), start=1):
        name, _, rest = entry.partition(":")
        role, _, password_hash = rest.partition(":")
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"OUTREACH_DASHBOARD_USERS entry {number}: the name must be 1-100 letters, digits "
                "or ._@+-"
            )
        try:
            parsed_role = Role(role.strip().lower())
        except ValueError:
            raise ConfigError(
                f"OUTREACH_DASHBOARD_USERS entry {number} ({name}): role {role!r} is not viewer "
                "or sender"
            ) from None
        if not password_hash.startswith(("$argon2", "scrypt$")):
            raise ConfigError(
                f"OUTREACH_DASHBOARD_USERS entry {number} ({name}): the hash must be an argon2 "
                "or scrypt hash from `python -m outreach_core hash-password`, not a password"
            )
        if name in accounts:
            raise ConfigError(f"OUTREACH_DASHBOARD_USERS: {name} is listed twice")
        accounts[name] = Account(name, parsed_role, password_hash)
    if accounts:
        # Made now, so the first unknown name is not slower than the ones after it.
        _dummy_hash(next(iter(accounts.values())).password_hash)
    return accounts


def hash_password(password: str, *, scheme: str = "argon2") -> str:
    """A hash for OUTREACH_DASHBOARD_USERS: argon2id (default) or hashlib's scrypt."""
    if not password:
        raise ValueError("the password is empty")
    if scheme == "argon2":
        return PasswordHasher().hash(password)
    if scheme == "scrypt":
        salt = os.urandom(16)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
        )
        b64 = base64.b64encode
        return (
            f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"
        )
    raise ValueError(f"scheme {scheme!r} is not argon2 or scrypt")


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash (constant time; a broken hash never matches)."""
    if password_hash.startswith("$argon2"):
        try:
            return PasswordHasher().verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    if password_hash.startswith("scrypt$"):
        try:
            _, n, r, p, salt, digest = password_hash.split("$")
            expected = base64.b64decode(digest, validate=True)
            found = hashlib.scrypt(
                password.encode(),
                salt=base64.b64decode(salt, validate=True),
                n=int(n),
                r=int(r),
                p=int(p),
                dklen=len(expected),
            )
        except ValueError:
            return False
        return hmac.compare_digest(found, expected)
    return False


#: dummy hashes by the cost part of the hashes they imitate
_DUMMIES: dict[str, str] = {}


def _cost_of(password_hash: str) -> str:
    """The part of a hash that sets its cost (scheme and parameters, no salt or digest)."""
    if password_hash.startswith("scrypt$") and password_hash.count("$") == 5:
        return "$".join(password_hash.split("$")[:4])
    if password_hash.startswith("$argon2") and password_hash.count("$") == 5:
        return password_hash.rsplit("$", 2)[0]
    return "$argon2"


def _dummy_hash(model: str) -> str:
    """A hash of a random password made with the same scheme and cost as `model` (a real
    account's hash), so verifying against it costs what verifying against `model` does."""
    cost = _cost_of(model)
    if cost not in _DUMMIES:
        secret = base64.b64encode(os.urandom(24)).decode()
        if cost.startswith("scrypt$"):
            b64 = base64.b64encode
            dummy = f"{cost}${b64(os.urandom(16)).decode()}${b64(os.urandom(32)).decode()}"
        else:
            try:
                hasher = PasswordHasher.from_parameters(extract_parameters(model))
            except (InvalidHashError, ValueError):
                hasher = PasswordHasher()
            dummy = hasher.hash(secret)
        _DUMMIES[cost] = dummy
    return _DUMMIES[cost]


def authenticate(accounts: dict[str, Account], name: str, password: str) -> User | None:
    """The user when name and password match an account, else None.

    An unknown name is checked against a dummy hash as costly as the accounts' own, so it
    takes as long as a wrong password and the answer's timing does not tell which names exist.
    """
    account = accounts.get(name.strip())
    if account is None:
        model = next(iter(accounts.values()), None)
        verify_password(_dummy_hash(model.password_hash if model else ""), password)
        return None
    if not verify_password(account.password_hash, password):
        return None
    return User(account.name, account.role)


def _entries(value: str | None) -> list[str]:
    return [e.strip().lower() for e in re.split(r"[,;\s]+", value or "") if e.strip()]


def oidc_role(email: str | None, senders: str | None) -> Role:
    """An OIDC user is a sender when their email is in OUTREACH_DASHBOARD_SENDERS, else a
    viewer."""
    return Role.SENDER if email and email.strip().lower() in _entries(senders) else Role.VIEWER


class OidcRefused(Exception):
    """An identity provider's user this dashboard does not let in; the message says why."""


def parse_oidc_allowed(value: str | None) -> frozenset[str]:
    """OUTREACH_OIDC_ALLOWED: emails and `@domain` entries; anything else is a ConfigError."""
    entries = frozenset(_entries(value))
    for entry in entries:
        local, at, domain = entry.rpartition("@")
        if not at or not domain or "." not in domain or "@" in local:
            raise ConfigError(
                f"OUTREACH_OIDC_ALLOWED: {entry!r} is neither an email (ann@example.com) nor a "
                "domain written with its @ (@example.com)"
            )
    return entries


def _verified(claims: Mapping[str, object]) -> bool:
    # Some providers send the claim as the string "true".
    flag = claims.get("email_verified")
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def oidc_user(claims: Mapping[str, object], *, allowed: str | None, senders: str | None) -> User:
    """The user an identity provider signed in, from its claims: a verified email listed in
    OUTREACH_OIDC_ALLOWED (the email itself or `@` its domain) or in
    OUTREACH_DASHBOARD_SENDERS. Only the email counts: never the `name` claim, which the
    user sets. Raises OidcRefused (saying what to set) otherwise."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise OidcRefused(
            "The identity provider sent no email address for this account, and only a "
            "verified email can be let in."
        )
    email = email.strip().lower()
    if not _verified(claims):
        raise OidcRefused(
            f"The identity provider has not verified the email {email}, so it is not let in."
        )
    listed = parse_oidc_allowed(allowed) | frozenset(_entries(senders))
    if email not in listed and "@" + email.rpartition("@")[2] not in listed:
        raise OidcRefused(
            f"{email} is not allowed to use this dashboard. An administrator can add it (or "
            "@ its domain) to OUTREACH_OIDC_ALLOWED and restart the dashboard."
        )
    return User(email, oidc_role(email, senders))
