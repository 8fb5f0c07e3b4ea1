"""Dashboard access under AppTest: refused off loopback without a login, a password login,
and a viewer who cannot send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.store import audit
from outreach_core.domain.access import Role, User, hash_password
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
