"""Dashboard access, drawn: the gate Home.py runs before every page, and the role checks pages
make before anything that changes something. Decisions live in `outreach_core.domain.access`."""

from __future__ import annotations

import logging
from typing import NoReturn

import streamlit as st

from outreach_core.adapters.settings import Settings
from outreach_core.domain.access import (
    FOREIGN_HOST_HELP,
    LOCAL_USER,
    PROXY_HEADERS,
    REFUSED_HELP,
    AccessMode,
    OidcRefused,
    Role,
    User,
    access_mode,
    is_local,
    is_local_request,
    oidc_user,
    parse_accounts,
)
from outreach_core.domain.login_throttle import LoginThrottle
from outreach_core.errors import ConfigError

_USER_KEY = "_outreach_user"
_log = logging.getLogger("outreach.dashboard")
#: failed sign-ins of this dashboard process (every session's thread shares it)
THROTTLE = LoginThrottle()


def _has_oidc() -> bool:
    """Whether .streamlit/secrets.toml has an [auth] section for st.login."""
    try:
        return bool(st.secrets.load_if_toml_exists()) and "auth" in st.secrets
    except (FileNotFoundError, OSError):
        return False


def local_request() -> bool:
    """Whether this session's request came from a browser on this machine (Host and Origin of
    the websocket request name 127.0.0.1, localhost or [::1] on our port; no proxy headers).

    A script run with no request at all (AppTest, a bare run) has no headers and is local:
    every browser's websocket request carries Host, Upgrade and the websocket key.
    """
    headers = st.context.headers
    if not len(headers):
        return True
    hosts, origins = headers.get_all("host"), headers.get_all("origin")
    return len(origins) <= 1 and is_local_request(
        hosts[0] if len(hosts) == 1 else None,
        origins[0] if origins else None,
        int(st.get_option("server.port")),
        proxied=any(name in headers for name in PROXY_HEADERS),
    )


def settings_error(exc: ConfigError) -> NoReturn:
    """Draw a broken setting and stop, before any login could be checked. The message names
    settings and their entries (user names, hosts), so only a browser on this machine of an
    open dashboard reads it; anyone else is told to look at the server's log."""
    if is_local(st.get_option("server.address")) and local_request():
        st.error(str(exc))
        st.caption("Fix the setting in the environment or in `.env`, then reload this page.")
    else:
        _log.error("the dashboard cannot start: %s", exc)
        st.title("Not available")
        st.error("A setting of this dashboard is wrong; its operator finds which in its log.")
    st.stop()
    raise AssertionError("st.stop() returned")  # for the type checker: stop never returns


def mode(settings: Settings) -> AccessMode:
    """How this server lets people in, from its listen address, the request's host and the
    configured logins."""
    return access_mode(
        st.get_option("server.address"),
        has_users=bool(parse_accounts(settings.dashboard_users)),
        has_oidc=_has_oidc(),
        local_request=local_request(),
    )


def gate(settings: Settings) -> User:
    """Return who is using the dashboard, or draw the login (or the refusal) and stop.

    Home.py calls it before `page.run()`, so no page is served to someone not let in.
    """
    found = mode(settings)
    if found is AccessMode.OPEN:
        user = User(LOCAL_USER, Role.SENDER)
    elif found is AccessMode.REFUSED:
        st.title("Sign-in required")
        address = st.get_option("server.address")
        if is_local(address):  # open on loopback, but the request names another host
            st.error(FOREIGN_HOST_HELP.format(port=st.get_option("server.port")))
        else:
            st.error(REFUSED_HELP.format(address=address or "every address"))
        st.stop()
    elif found is AccessMode.OIDC:
        user = _oidc_user(settings)
    else:
        user = _password_user(settings)
    st.session_state[_USER_KEY] = user
    if found is not AccessMode.OPEN:
        st.sidebar.caption(f"Signed in as **{user.name}** ({user.role})")
        st.sidebar.button("Log out", on_click=_log_out, args=(found,), key="_outreach_logout")
    return user


def check(settings: Settings) -> None:
    """The gate again, from inside a page (`ui.workspace` calls it): a page Streamlit runs on
    its own, without Home.py (a deep link, a stopped first run), is refused the same way.
    Draws nothing when the session is let in."""
    found = mode(settings)
    if found is AccessMode.OPEN:
        st.session_state[_USER_KEY] = User(LOCAL_USER, Role.SENDER)
        return
    signed_in = isinstance(st.session_state.get(_USER_KEY), User)
    if found is AccessMode.OIDC and signed_in and _oidc_logged_in():
        return
    if found is AccessMode.PASSWORD and signed_in:
        return
    gate(settings)  # draws the refusal or the login and stops


def _log_out(found: AccessMode) -> None:
    st.session_state.pop(_USER_KEY, None)
    if found is AccessMode.OIDC:
        st.logout()


def _oidc_logged_in() -> bool:
    """st.user's login flag; absent (not logged in) where no identity provider session runs."""
    return bool(st.user.get("is_logged_in", False))


def _oidc_user(settings: Settings) -> User:
    if not _oidc_logged_in():
        st.title("Sign in")
        st.caption("This dashboard signs you in with your organisation's account.")
        st.button("Log in", type="primary", on_click=st.login, key="_outreach_login")
        st.stop()
    try:
        return oidc_user(
            st.user.to_dict(),
            allowed=settings.oidc_allowed,
            senders=settings.dashboard_senders,
        )
    except OidcRefused as refused:
        st.title("Sign-in refused")
        st.error(str(refused))
        st.button("Log out", on_click=st.logout, key="_outreach_refused_logout")
        st.stop()
        raise AssertionError("st.stop() returned") from None


def _password_user(settings: Settings) -> User:
    signed_in = st.session_state.get(_USER_KEY)
    if isinstance(signed_in, User):
        return signed_in
    st.title("Sign in")
    name = st.text_input("User name", key="_outreach_login_name")
    password = st.text_input("Password", type="password", key="_outreach_login_password")
    if st.button("Sign in", type="primary", key="_outreach_sign_in"):
        accounts = parse_accounts(settings.dashboard_users)
        # The connection's address (None on loopback): a proxy in front shares one, which is
        # why the per-client limit is higher than the per-user one.
        result = THROTTLE.attempt(accounts, name, password, st.context.ip_address or "local")
        if result.user is not None:
            st.session_state[_USER_KEY] = result.user
            st.rerun()
        st.error(result.message())
    st.stop()
    raise AssertionError("st.stop() returned")  # for the type checker: stop never returns


def current_user() -> User:
    """The user of this session (the gate sets it; a page run without the gate sees a viewer)."""
    user = st.session_state.get(_USER_KEY)
    return user if isinstance(user, User) else User("unknown", Role.VIEWER)


def actor() -> str:
    """The name audit records carry for what this session does: the signed-in user, or
    `dashboard` when the dashboard is local and open."""
    user = current_user()
    return "dashboard" if user.name == LOCAL_USER else user.name


def can(role: str | Role) -> bool:
    """Whether this session's user has the role (no message drawn)."""
    return current_user().can(Role(role))


def require_role(role: str | Role) -> bool:
    """Check before an action that changes something: False (with an error drawn) when the
    user lacks the role."""
    if can(role):
        return True
    user = current_user()
    st.error(f"{user.name} is a {user.role}: only a {Role(role)} can do this.")
    return False
