"""List-Unsubscribe and one-click headers, and the opaque per-recipient token."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from outreach_core import list_unsubscribe as unsubscribe
from outreach_core.models import SendOptions

FERNET = Fernet(Fernet.generate_key())


def test_https_url_gives_one_click_and_comes_before_mailto() -> None:
    """Verify https + mailto: both URIs in angle brackets, https first, plus the Post header."""
    found = unsubscribe.headers(
        mailto="unsub@example.com", url="https://example.com/u/{token}", token="T0K"
    )
    assert found == {
        "List-Unsubscribe": "<https://example.com/u/T0K>, <mailto:unsub@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_mailto_alone_has_no_one_click_and_nothing_gives_nothing() -> None:
    """Verify mailto only: no List-Unsubscribe-Post; neither form: no headers at all."""
    assert unsubscribe.headers(mailto="u@example.com", url=None, token="") == {
        "List-Unsubscribe": "<mailto:u@example.com?subject=unsubscribe>"
    }
    assert unsubscribe.headers(mailto=None, url=None, token="x") == {}


def test_token_is_opaque_and_reads_back() -> None:
    """Verify the token hides the address, reads back to (workflow, address), rejects forgeries."""
    token = unsubscribe.make_token(FERNET, workflow_id=7, email="ann@example.org")
    assert "ann" not in token and "example" not in token
    assert unsubscribe.read_token(FERNET, token) == (7, "ann@example.org")
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; it must not read back
        unsubscribe.read_token(Fernet(Fernet.generate_key()), token)


@pytest.mark.parametrize("url", ["http://example.com/u/{token}", "https://example.com/u"])
def test_unsubscribe_url_must_be_https_with_a_token(url: str) -> None:
    """Verify a plain-http URL or one without {token} is refused with the rule stated."""
    with pytest.raises(ValidationError, match=r"https:// and contain \{token\}"):
        SendOptions(unsubscribe_url=url)
