"""Who may use the dashboard: the decision (open, password, OIDC, refused), the users from
settings and their password hashes. No streamlit here; `outreach_core.ui.auth` draws it.

The dashboard is open only when it listens on loopback: anyone who can reach another address
would otherwise get SMTP passwords and SQL sources. `OUTREACH_DASHBOARD_USERS` holds
`name:role:hash` entries separated by `;` or whitespace (an argon2 hash holds commas);
`python -m outreach_core hash-password` prints a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from outreach_core.errors import ConfigError

#: addresses Streamlit can listen on that only this machine reaches
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
#: the user name recorded in the audit log when the dashboard is local and open
LOCAL_USER = "local"
#: hashlib.scrypt parameters for `scrypt$` hashes (n=2**14, r=8, p=1: ~16 MiB, ~50 ms)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,100}")


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


def access_mode(address: str | None, *, has_users: bool, has_oidc: bool) -> AccessMode:
    """The decision: open on loopback; otherwise OIDC if configured, then passwords, else refuse."""
    if is_local(address):
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


def authenticate(accounts: dict[str, Account], name: str, password: str) -> User | None:
    """The user when name and password match an account, else None."""
    account = accounts.get(name.strip())
    if account is None or not verify_password(account.password_hash, password):
        return None
    return User(account.name, account.role)


def oidc_role(email: str | None, senders: str | None) -> Role:
    """An OIDC user is a sender when their email is in OUTREACH_DASHBOARD_SENDERS, else a
    viewer."""
    listed = {s.strip().lower() for s in re.split(r"[,;\s]+", senders or "") if s.strip()}
    return Role.SENDER if email and email.strip().lower() in listed else Role.VIEWER
