"""The Engines page with passwords that hold URL delimiters: a `#` password is saved and only
ever shown masked (form feedback, table, audit page); a URL where it cannot be told where the
password ends is refused with a message that holds no piece of it, and nothing is saved."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from outreach_core import services
from tests.e2e.dashboard import HOME, Demo
from tests.e2e.test_send_engines_pages import every_text

HASH_PASSWORD = "8421#Kx9zz"
AMBIGUOUS_PASSWORD = "p@ssWq#9Zx"


def pieces(secret: str) -> list[str]:
    """Every 3-character piece of the secret."""
    return [secret[i : i + 3] for i in range(len(secret) - 2)]


def submit(at: AppTest, name: str, url: str) -> None:
    at.text_input(key="engine_name").set_value(name)
    at.text_input(key="engine_url").set_value(url)
    at.text_input(key="engine_from_email").set_value("news@example.com")
    at.form_submit_button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]


def test_a_hash_password_is_saved_and_shown_masked_on_every_page(demo: Demo) -> None:
    """Verify `smtp://bob:8421#Kx9zz@relay.example.com:587` is saved as bob's password on that
    host (masked in the feedback, the table and the audit page, no piece of it anywhere)."""
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/engines.py").run()
    submit(at, "Relay", f"smtp://bob:{HASH_PASSWORD}@relay.example.com:587")

    assert not at.error, [e.value for e in at.error]
    assert "smtp://bob:***@relay.example.com:587" in at.success[0].value
    rows = {r["Name"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert rows["Relay"]["URL"] == "smtp://bob:***@relay.example.com:587"
    texts = [every_text(at)]
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    texts.append(every_text(at))
    joined = "\n".join(texts)
    assert "engine.save" in joined  # the audit page did list the save
    assert [p for p in pieces(HASH_PASSWORD) if p in joined] == []


def test_an_ambiguous_url_is_refused_without_any_piece_of_the_password(demo: Demo) -> None:
    """Verify a password with `@` before `#` is refused, the error says to percent-encode,
    shows no 3-character piece of the password, and nothing is saved."""
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/engines.py").run()
    submit(at, "Broken", f"smtp://bob:{AMBIGUOUS_PASSWORD}@relay.example.com:587")

    assert at.error and "percent-encode the password" in at.error[0].value
    shown = every_text(at)
    assert [p for p in pieces(AMBIGUOUS_PASSWORD) if p in shown] == []
    assert [e.name for e in services.list_engines(demo.ws)] == ["Local outbox"]
