"""Schedule form input and the daemon's settings, without a database."""

from __future__ import annotations

import subprocess
import sys

import pytest

from outreach_core.adapters.settings import load_settings
from outreach_core.domain.cadence import CadenceKind, parse_window
from outreach_core.entrypoints.http_api import parse_listen
from outreach_core.errors import InputError
from outreach_core.services.schedules import make_cadence

from conftest import REPO


def test_make_cadence_keeps_only_the_fields_its_kind_uses() -> None:
    """Verify a weekly cadence ignores a stray interval; hours ignores a stray time."""
    weekly = make_cadence("weekly", interval=5, at="07:30", days=[4, 0])
    assert weekly.kind is CadenceKind.WEEKLY and weekly.days == (0, 4) and weekly.interval is None
    hourly = make_cadence("hours", interval=3, at="07:30")
    assert hourly.at is None and hourly.interval == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "weekly", "at": "09:00", "days": []}, "at least one day"),
        ({"kind": "minutes"}, "needs an interval"),
        ({"kind": "daily", "at": "25:00"}, "HH:MM"),
    ],
)
def test_make_cadence_errors_name_the_field(fields: dict, message: str) -> None:
    """Verify a bad form is an InputError naming what to fix."""
    kind = fields.pop("kind")
    with pytest.raises(InputError, match=message):
        make_cadence(kind, **fields)


@pytest.mark.parametrize("text", ["9-17", "09:00", "09:00-09:00", "09:00-17:60"])
def test_bad_send_window_shows_the_form(text: str) -> None:
    """Verify malformed or empty windows are refused with an example."""
    with pytest.raises(InputError, match=r"HH:MM-HH:MM, e\.g\. 09:00-17:00"):
        parse_window(text)


def test_listen_address_is_host_and_port() -> None:
    """Verify --http takes HOST:PORT and refuses anything else with the form."""
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    for bad in ("8080", "host:", "host:99999", ":80"):
        with pytest.raises(InputError, match="HOST:PORT"):
            parse_listen(bad)


def test_api_token_is_a_secret_in_settings() -> None:
    """Verify OUTREACH_API_TOKEN is kept as a SecretStr: never in the settings' repr."""
    settings = load_settings(_env_file=None, OUTREACH_API_TOKEN="tok-123-secret")
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "tok-123-secret"
    assert "tok-123-secret" not in repr(settings) and "tok-123-secret" not in str(settings)


def test_daemon_refuses_a_bad_http_address_with_exit_2() -> None:
    """Verify `--http nonsense` exits 2 with the expected form, before doing any work."""
    result = subprocess.run(
        [sys.executable, "scheduler_daemon.py", "--http", "nonsense"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr and "Traceback" not in result.stderr
