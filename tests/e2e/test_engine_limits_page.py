"""The limits form of the Engines page under AppTest: current limits shown, saved without the
engine's URL or secret, blank = no limit, bad values shown under their field, nothing saved."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from outreach_core import EngineLimits, services
from outreach_core.adapters import crypto
from outreach_core.adapters.store import engines
from tests.e2e.dashboard import HOME, Demo
from tests.e2e.test_send_engines_pages import every_text

SECRET = "L1mits-s3cret-Pw"


def literal(value: str) -> str:
    """A box's text as the browser shows it: the backslash escapes of `ui.plain` removed."""
    return re.sub(r"\\(.)", r"\1", value)


def start() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/engines.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def save(at: AppTest) -> AppTest:
    at.button(key="FormSubmitter:limits_form-Save limits").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_limits_are_saved_and_shown_without_touching_the_secret(demo: Demo) -> None:
    """Verify limits and From change for the picked engine, the table and the form show them,
    the stored URL is unchanged and its secret appears nowhere on the page."""
    relay = services.save_engine(
        demo.ws, name="Relay", url=f"smtp://mailer:{SECRET}@relay.example.com:587",
        from_email="news@example.com", from_name="News", actor="test",
    )  # fmt: skip
    with demo.ws.db.connect() as conn:
        stored = engines.get_encrypted_url(conn, relay.id)
    at = start()
    at.selectbox(key="limits_engine").set_value(relay.id).run()
    assert "Current limits: **no limits**" in [m.value for m in at.markdown]
    assert at.text_input(key="limit_from_email").value == "news@example.com"
    at.number_input(key="limit_rate_per_second").set_value(2.5)
    at.number_input(key="limit_daily_quota").set_value(250)
    at.number_input(key="limit_per_domain_per_minute").set_value(10)
    at.text_input(key="limit_from_name").set_value("Newsroom")
    save(at)

    assert not at.error, [e.value for e in at.error]
    assert "2.5/s, 250/day, 10/min per domain" in at.success[0].value
    saved = {e.name: e for e in services.list_engines(demo.ws)}["Relay"]
    assert saved.limits == EngineLimits(
        rate_per_second=2.5, daily_quota=250, per_domain_per_minute=10
    )
    assert (saved.from_email, saved.from_name) == ("news@example.com", "Newsroom")
    rows = {r["Name"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["Relay"]["Limits"] == "2.5/s, 250/day, 10/min per domain"
    assert rows["Local outbox"]["Limits"] == "no limits"
    with demo.ws.db.connect() as conn:
        assert engines.get_encrypted_url(conn, relay.id) == stored
    assert SECRET in crypto.decrypt(demo.ws.fernet, stored)
    assert SECRET not in every_text(at)

    at.number_input(key="limit_daily_quota").set_value(None)  # blank = no limit
    save(at)
    saved = {e.name: e for e in services.list_engines(demo.ws)}["Relay"]
    assert saved.limits == EngineLimits(rate_per_second=2.5, per_domain_per_minute=10)


def test_bad_limits_are_shown_under_their_field_and_nothing_is_saved(demo: Demo) -> None:
    """Verify a zero burst and a bad From address each get their own error; nothing changes."""
    at = start()
    at.number_input(key="limit_burst").set_value(0)
    at.number_input(key="limit_max_concurrency").set_value(4)
    at.text_input(key="limit_from_email").set_value("not an address")
    save(at)

    messages = [literal(e.value) for e in at.error]
    assert "Nothing was saved: fix the fields marked below." in messages
    assert "must be 1 or more" in messages
    assert [e.limits for e in services.list_engines(demo.ws)] == [EngineLimits()]

    at.number_input(key="limit_burst").set_value(5)
    save(at)
    assert any("from address 'not an address'" in literal(e.value) for e in at.error)
    assert [e.limits for e in services.list_engines(demo.ws)] == [EngineLimits()]
    assert services.list_engines(demo.ws)[0].from_email == "workshops@example.com"
