"""Settings from the environment and `.env`: a bad value names the variable to fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from outreach_core.adapters.settings import Settings, load_settings
from outreach_core.errors import ConfigError

from conftest import REPO, run_cli


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Outreach variable from the caller's environment, and a cwd without a `.env`."""
    for name in list(os.environ):
        if name.startswith(("OUTREACH_", "REPORT_")) or name == "LOG_LEVEL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_without_environment(clean_env: Path) -> None:
    """Verify an empty environment gives the documented defaults and a SQLite URL in data/."""
    settings = load_settings()
    assert settings.dns_timeout == 5.0
    assert settings.nameservers == []
    assert settings.log_level == "INFO"
    assert settings.database_url is None
    assert settings.sqlalchemy_url == f"sqlite:///{(clean_env / 'data' / 'outreach.db').resolve()}"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("OUTREACH_DNS_TIMEOUT", "abc"),
        ("OUTREACH_DNS_TIMEOUT", "0"),
        ("OUTREACH_DNS_TIMEOUT", "-1"),
        ("OUTREACH_DNS_NAMESERVERS", "127.0.0.1"),
        ("OUTREACH_DNS_NAMESERVERS", "127.0.0.1:53,:53"),
        ("OUTREACH_DNS_NAMESERVERS", "127.0.0.1:70000"),
        ("OUTREACH_DNS_NAMESERVERS", "127.0.0.1:dns"),
        ("LOG_LEVEL", "LOUD"),
        ("OUTREACH_DATABASE_URL", "mysql://db/outreach"),
        ("OUTREACH_DATABASE_URL", "postgresql+psycopg://u@host:99999x/db"),
        ("OUTREACH_DATABASE_URL", "postgresql+psycopg://u@host:99999/db"),
        ("OUTREACH_DATABASE_URL", "postgresql+psycopg://u@host:0/db"),
        ("REPORT_SMTP_PORT", "0"),
        ("REPORT_SMTP_TLS", "tls"),
        ("REPORT_SMTP_CAFILE", "ca.pem"),
        ("REPORT_SMTP_TIMEOUT", "0"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Verify a malformed variable raises ConfigError whose message starts with its name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"invalid setting {variable}: "):
        load_settings()


def test_bad_value_in_dotenv_file_is_reported_too(clean_env: Path) -> None:
    """Verify `.env` in the working directory is read and checked like the environment."""
    (clean_env / ".env").write_text("OUTREACH_DNS_TIMEOUT=soon\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="OUTREACH_DNS_TIMEOUT"):
        load_settings()


def test_environment_wins_over_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a variable set in the environment overrides the same one in `.env`."""
    (clean_env / ".env").write_text("OUTREACH_DNS_TIMEOUT=9\n", encoding="utf-8")
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "2.5")
    assert load_settings().dns_timeout == 2.5


def test_several_bad_values_are_all_named(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify every malformed variable is reported at once, not one per attempt."""
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "abc")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    assert "OUTREACH_DNS_TIMEOUT" in str(excinfo.value)
    assert "LOG_LEVEL" in str(excinfo.value)


def test_good_values_are_parsed(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify nameservers become (host, port) pairs and the log level is upper-cased."""
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", "127.0.0.1:5353, [::1]:53")
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "0.5")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.nameservers == [("127.0.0.1", 5353), ("[::1]", 53)]
    assert settings.dns_timeout == 0.5
    assert settings.log_level == "DEBUG"


def test_empty_variable_means_default(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify `OUTREACH_DNS_TIMEOUT=` (empty) falls back to the default instead of failing."""
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "")
    assert load_settings().dns_timeout == 5.0


def test_report_password_is_not_in_repr(clean_env: Path) -> None:
    """Verify the report SMTP password never appears in the settings' repr."""
    settings = Settings(_env_file=None, REPORT_SMTP_PASSWORD="s3cret-pass")
    assert settings.report_smtp_password == "s3cret-pass"
    assert "s3cret-pass" not in repr(settings)


def test_cli_with_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """Verify `python -m outreach_core runs` with a bad OUTREACH_DNS_TIMEOUT exits 2, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REPORT_"))}
    env.pop("LOG_LEVEL", None)
    env.update(
        OUTREACH_DATA_DIR=str(tmp_path / "data"),
        OUTREACH_DNS_TIMEOUT="abc",
        PYTHONPATH=str(REPO),
    )
    result = run_cli(tmp_path, "runs", env=env)
    assert result.returncode == 2, result.stderr
    assert "OUTREACH_DNS_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    """Verify an unreachable database exits 2 with its URL masked and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REPORT_"))}
    env.update(
        OUTREACH_DATA_DIR=str(tmp_path / "data"),
        OUTREACH_DATABASE_URL="postgresql+psycopg://u:s3cret-pw@127.0.0.1:1/x?connect_timeout=3",
    )
    result = run_cli(tmp_path, "runs", env=env)
    assert result.returncode == 2
    assert "cannot open the database postgresql+psycopg://u:***@127.0.0.1:1/x" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@host:99999x/db",
        "postgresql+psycopg://u:s3cret-pw@host:99999x/db",
        "postgresql+psycopg://u:s3cret-pw@host:123456/db",
        "postgresql+psycopg://u:s3cret-pw@host:/db:5",
    ],
)
def test_cli_with_a_malformed_database_port_exits_2_on_one_line(tmp_path: Path, url: str) -> None:
    """Verify a database URL whose port is no number 1-65535 exits 2 with one line that names
    the variable and says what to fix, no traceback and nothing of the password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTREACH_", "REPORT_"))}
    env.update(OUTREACH_DATA_DIR=str(tmp_path / "data"), OUTREACH_DATABASE_URL=url)
    result = run_cli(tmp_path, "runs", env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("outreach: invalid setting OUTREACH_DATABASE_URL: ")
    assert "1-65535" in lines[0]
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()  # nothing was created for a workspace never opened


def test_report_tls_is_read_in_any_case(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify REPORT_SMTP_TLS is case-insensitive and unset means None (the default rules)."""
    assert load_settings().report_smtp_tls is None
    monkeypatch.setenv("REPORT_SMTP_TLS", "SSL")
    assert load_settings().report_smtp_tls == "ssl"
