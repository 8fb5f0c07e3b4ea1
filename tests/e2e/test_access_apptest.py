"""Dashboard access under AppTest: refused off loopback without a login, refused on loopback
to a request naming another host, a password login and its throttling, and a viewer who
cannot send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.context import ContextProxy, StreamlitHeaders
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.store import audit
from outreach_core.domain.access import Role, User, hash_password
from outreach_core.domain.login_throttle import LoginThrottle
from outreach_core.ui import auth
from tests.e2e.dashboard import HOME, Demo

PAGES = ["pages/overview.py", "pages/send.py", "pages/engines.py", "pages/audiences.py"]


@pytest.fixture
def exposed() -> Iterator[None]:
    """The dashboard listens on every interface (server.address 0.0.0.0)."""
    st.config.set_option("server.address", "0.0.0.0")
    yield
    st.config.set_option("server.address", "127.0.0.1")


@pytest.fixture
def users(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two accounts: ann (sender, argon2) and vic (viewer, scrypt)."""
    ann = hash_password("ann-pass-1")
    vic = hash_password("vic-pass-2", scheme="scrypt")
    monkeypatch.setenv("OUTREACH_DASHBOARD_USERS", f"ann:sender:{ann};vic:viewer:{vic}")


def open_home() -> AppTest:
    """Home.py run twice: AppTest's first run of a navigation app has no page hash yet, so
    widget ids change once; the second run's ids are the ones a click is matched against."""
    return AppTest.from_file(HOME, default_timeout=30).run().run()


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="_outreach_login_name").input(name)
    at.text_input(key="_outreach_login_password").input(password)
    return at.button(key="_outreach_sign_in").click().run()


@pytest.mark.usefixtures("exposed")
def test_without_a_login_no_page_is_served_off_loopback(demo: Demo) -> None:
    """Verify server.address 0.0.0.0 and no login configured: every page is refused, and the
    refusal says how to configure access."""
    at = AppTest.from_file(HOME, default_timeout=30).run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert [t.value for t in at.title] == ["Sign-in required"]
        [error] = at.error
        assert "OUTREACH_DASHBOARD_USERS" in error.value and "127.0.0.1" in error.value
        assert not at.dataframe and not at.metric and not at.button


@pytest.mark.usefixtures("exposed", "users")
def test_password_login_lets_the_right_password_in(demo: Demo) -> None:
    """Verify a wrong password is refused and the right one shows the pages."""
    at = open_home()
    assert [t.value for t in at.title] == ["Sign in"]
    sign_in(at, "ann", "wrong")
    assert "wrong" in at.error[0].value and [t.value for t in at.title] == ["Sign in"]
    sign_in(at, "ann", "ann-pass-1")
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    assert at.session_state["_outreach_user"] == User("ann", Role.SENDER)


@pytest.mark.usefixtures("exposed", "users")
def test_a_viewer_sees_but_cannot_send(demo: Demo) -> None:
    """Verify a viewer gets the Send page with Send now disabled and a click on Queue run
    queues nothing; a sender's send is audited under the sender's name."""
    at = open_home()
    sign_in(at, "vic", "vic-pass-2")
    at.switch_page("pages/send.py").run()
    assert [t.value for t in at.title] == ["Send"]
    at.checkbox(key="send_confirm").check().run()
    assert at.button(key="send_now").disabled
    at.switch_page("pages/overview.py").run()
    [queue] = [b for b in at.button if b.label == "Queue run"]
    queue.click().run()  # enabled for everyone: the callback checks the role itself
    assert any("vic is a viewer: only a sender can do this" in e.value for e in at.error)
    assert services.recent_runs(demo.ws) == []

    at = open_home()
    sign_in(at, "ann", "ann-pass-1")
    at.switch_page("pages/send.py").run()
    at.checkbox(key="send_confirm").check().run()
    assert not at.button(key="send_now").disabled
    at.button(key="send_now").click().run()
    assert not at.exception
    assert len(services.recent_runs(demo.ws)) == 1
    with demo.ws.db.connect() as conn:
        queued = [e for e in audit.latest(conn) if e["action"] == "run.queue"]
    assert queued and queued[0]["actor"] == "ann"


@pytest.mark.usefixtures("exposed")
def test_oidc_configured_asks_to_log_in_with_the_provider(demo: Demo) -> None:
    """Verify an [auth] section in secrets.toml makes the dashboard offer st.login and serve
    no page before it."""
    at = AppTest.from_file(HOME, default_timeout=30)
    at.secrets["auth"] = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "cookie-secret-for-the-test",
        "client_id": "outreach",
        "client_secret": "client-secret-for-the-test",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
    }
    at.run()
    at.switch_page("pages/send.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.metric and not at.dataframe


def request_headers(monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[str, str]]) -> None:
    """The websocket request's headers as a browser would send them (AppTest has none)."""
    monkeypatch.setattr(
        ContextProxy, "headers", property(lambda _self: StreamlitHeaders(pairs)), raising=True
    )


REBINDING = [
    ("Host", "attacker.example:8501"),
    ("Origin", "http://attacker.example:8501"),
    ("Upgrade", "websocket"),
]


@pytest.mark.parametrize(
    "headers",
    [
        REBINDING,
        # a page on another site opening a websocket to 127.0.0.1 itself
        [("Host", "127.0.0.1:8501"), ("Origin", "http://attacker.example")],
        [("Host", "127.0.0.1.nip.io:8501")],
        [("Host", "127.0.0.1:8501"), ("Host", "attacker.example")],
        [("Upgrade", "websocket")],  # no Host at all
    ],
)
def test_open_dashboard_refuses_a_foreign_host(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, headers: list[tuple[str, str]]
) -> None:
    """Verify loopback and no login, a request naming another host (or none): every page is
    refused with how to open it here, nothing of the workspace is drawn."""
    request_headers(monkeypatch, headers)
    at = AppTest.from_file(HOME, default_timeout=30).run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception
        assert [t.value for t in at.title] == ["Sign-in required"]
        [error] = at.error
        assert "names another host" in error.value and "http://127.0.0.1:8501/" in error.value
        assert not at.dataframe and not at.metric and not at.button


@pytest.mark.parametrize(
    "headers",
    [
        [("Host", "127.0.0.1:8501"), ("Origin", "http://127.0.0.1:8501")],
        [("Host", "localhost:8501")],
        [("Host", "[::1]:8501"), ("Origin", "http://[::1]:8501")],
    ],
)
def test_open_dashboard_still_opens_for_this_machine(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, headers: list[tuple[str, str]]
) -> None:
    """Verify a request naming 127.0.0.1, localhost or [::1] on the port gets the pages."""
    request_headers(monkeypatch, headers)
    at = open_home()
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]


@pytest.mark.usefixtures("users")
def test_a_proxied_request_to_the_loopback_dashboard_must_sign_in(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a reverse proxy in front of 127.0.0.1 (it keeps Host, adds X-Forwarded-For)
    gets the sign-in form when users are configured, and the pages only after it."""
    request_headers(
        monkeypatch,
        [("Host", "127.0.0.1:8501"), ("X-Forwarded-For", "203.0.113.7"), ("Upgrade", "ws")],
    )
    at = open_home()
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.dataframe and not at.metric
    sign_in(at, "ann", "ann-pass-1")
    assert [t.value for t in at.title] == ["Overview"]


@pytest.mark.usefixtures("exposed", "users")
def test_repeated_failures_throttle_the_sign_in_form(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify five wrong passwords, then the right one is refused with the wait named; after
    the wait (the throttle's clock moved by hand) the right password signs in."""
    now = [0.0]
    monkeypatch.setattr(auth, "THROTTLE", LoginThrottle(clock=lambda: now[0]))
    at = open_home()
    for _ in range(5):
        sign_in(at, "ann", "wrong")
        assert at.error[0].value == "The user name or the password is wrong."
    sign_in(at, "ann", "ann-pass-1")
    assert "Too many failed sign-ins" in at.error[0].value
    assert "Wait 60 seconds" in at.error[0].value
    assert [t.value for t in at.title] == ["Sign in"]
    now[0] += 60
    sign_in(at, "ann", "ann-pass-1")
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]


def test_a_broken_setting_is_explained_only_to_this_machine(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a malformed OUTREACH_DASHBOARD_USERS is shown in full to a local browser, while a
    request naming another host learns only that a setting is wrong (no user names)."""
    monkeypatch.setenv("OUTREACH_DASHBOARD_USERS", "carol-the-admin:admin:$argon2id$x")
    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert (
        "carol-the-admin" in at.error[0].value and "OUTREACH_DASHBOARD_USERS" in at.error[0].value
    )

    request_headers(monkeypatch, [("Host", "127.0.0.1:8501"), ("Origin", "http://evil.test")])
    at = AppTest.from_file(HOME, default_timeout=30).run()
    assert [t.value for t in at.title] == ["Not available"]
    [error] = at.error
    assert "carol" not in error.value and "OUTREACH_DASHBOARD_USERS" not in error.value
    assert not at.dataframe and not at.metric


class SignedInUser(dict):
    """What st.user holds after the identity provider's callback: its claims."""

    def to_dict(self) -> dict:
        return dict(self)


AUTH_SECTION = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "cookie-secret-for-the-test",
    "client_id": "outreach",
    "client_secret": "client-secret-for-the-test",
    "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
}


@pytest.mark.usefixtures("exposed")
@pytest.mark.parametrize(
    ("claims", "shown"),
    [
        ({"email": "eve@example.com", "email_verified": False}, "has not verified"),
        ({"email": "eve@elsewhere.org", "email_verified": True}, "not allowed"),
        ({"name": "ann@example.com", "email_verified": True}, "no email"),
    ],
)
def test_oidc_refuses_unverified_and_unlisted_accounts(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, claims: dict, shown: str
) -> None:
    """Verify a provider's account that is unverified, outside OUTREACH_OIDC_ALLOWED or without
    an email (a `name` claim is not enough) gets the refusal and a log-out, no page."""
    monkeypatch.setenv("OUTREACH_OIDC_ALLOWED", "@example.com")
    monkeypatch.setenv("OUTREACH_DASHBOARD_SENDERS", "ann@example.com")
    monkeypatch.setattr(st, "user", SignedInUser(is_logged_in=True, **claims))
    at = AppTest.from_file(HOME, default_timeout=30)
    at.secrets["auth"] = AUTH_SECTION
    at.run()
    at.switch_page("pages/send.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign-in refused"]
    assert shown in at.error[0].value
    assert [b.label for b in at.button] == ["Log out"]
    assert not at.metric and not at.dataframe


@pytest.mark.usefixtures("exposed")
def test_oidc_lets_a_verified_listed_email_in(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a verified email of a listed domain gets the pages as a viewer."""
    monkeypatch.setenv("OUTREACH_OIDC_ALLOWED", "@example.com")
    user = SignedInUser(is_logged_in=True, email="Bob@Example.com", email_verified=True)
    monkeypatch.setattr(st, "user", user)
    at = AppTest.from_file(HOME, default_timeout=30)
    at.secrets["auth"] = AUTH_SECTION
    at.run().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    assert at.session_state["_outreach_user"] == User("bob@example.com", Role.VIEWER)
