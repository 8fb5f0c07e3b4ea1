"""Dashboard access, drawn: the gate Home.py runs before every page, and the role checks pages
make before anything that changes something. Decisions live in `outreach_core.domain.access`."""

from __future__ import annotations

import streamlit as st

from outreach_core.adapters.settings import Settings
from outreach_core.domain.access import (
    LOCAL_USER,
    REFUSED_HELP,
    AccessMode,
    Role,
    User,
    access_mode,
    authenticate,
    oidc_role,
    parse_accounts,
)

_USER_KEY = "_outreach_user"


def _has_oidc() -> bool:
    """Whether .streamlit/secrets.toml has an [auth] section for st.login."""
    try:
        return bool(st.secrets.load_if_toml_exists()) and "auth" in st.secrets
    except (FileNotFoundError, OSError):
        return False


def mode(settings: Settings) -> AccessMode:
    """How this server lets people in, from its listen address and the configured logins."""
    return access_mode(
        st.get_option("server.address"),
        has_users=bool(parse_accounts(settings.dashboard_users)),
        has_oidc=_has_oidc(),
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
        st.error(REFUSED_HELP.format(address=st.get_option("server.address") or "every address"))
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
    email = str(st.user.get("email") or st.user.get("name") or "oidc user")
    return User(email, oidc_role(email, settings.dashboard_senders))


def _password_user(settings: Settings) -> User:
    signed_in = st.session_state.get(_USER_KEY)
    if isinstance(signed_in, User):
        return signed_in
    st.title("Sign in")
    name = st.text_input("User name", key="_outreach_login_name")
    password = st.text_input("Password", type="password", key="_outreach_login_password")
    if st.button("Sign in", type="primary", key="_outreach_sign_in"):
        user = authenticate(parse_accounts(settings.dashboard_users), name, password)
        if user is not None:
            st.session_state[_USER_KEY] = user
            st.rerun()
        st.error("The user name or the password is wrong.")
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
