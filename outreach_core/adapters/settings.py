"""Settings from the environment and `.env` (pydantic-settings)."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from outreach_core.adapters.imap_url import ImapMailbox, parse_imap_url
from outreach_core.domain.smtp_security import TLS_MODES
from outreach_core.errors import ConfigError, InputError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: arn:PARTITION:sns:REGION:ACCOUNT:TOPIC (a FIFO topic's name ends in .fifo)
_SNS_TOPIC_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?", re.ASCII
)
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:]+\]?", re.ASCII)
#: the value OUTREACH_SNS_CERT_HOSTS had by default, meaning AWS's hosts
_LEGACY_SNS_HOSTS = "sns.*.amazonaws.com"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Everything Outreach reads from its environment; see `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
        # a ValidationError would otherwise quote the value: URLs here hold passwords
        hide_input_in_errors=True,
    )

    database_url: str | None = Field(
        default=None,
        repr=False,  # may hold a password
        validation_alias=_env("OUTREACH_DATABASE_URL"),
        description="SQLAlchemy URL; default is SQLite at DATA_DIR/outreach.db",
    )
    data_dir: Path = Field(default=Path("data"), validation_alias=_env("OUTREACH_DATA_DIR"))
    dns_nameservers: str = Field(default="", validation_alias=_env("OUTREACH_DNS_NAMESERVERS"))
    dns_timeout: float = Field(default=5.0, gt=0, validation_alias=_env("OUTREACH_DNS_TIMEOUT"))
    dns_concurrency: int = Field(
        default=100, ge=1, le=1000, validation_alias=_env("OUTREACH_DNS_CONCURRENCY")
    )
    dns_cache_hours: float = Field(
        default=24.0, ge=0, validation_alias=_env("OUTREACH_DNS_CACHE_HOURS")
    )
    test_environment: bool = Field(
        default=False,
        validation_alias=_env("OUTREACH_TEST_ENVIRONMENT"),
        description="staging only: accept addresses at the special-use `test` domain and "
        "`*.test`, and send to domains whose mail hosts have private addresses (flagged "
        "`private_address`)",
    )
    secret_key: str | None = Field(
        default=None, repr=False, validation_alias=_env("OUTREACH_SECRET_KEY")
    )
    new_secret_key: str | None = Field(
        default=None, repr=False, validation_alias=_env("OUTREACH_NEW_SECRET_KEY")
    )
    log_level: str = Field(default="INFO", validation_alias=_env("LOG_LEVEL"))
    report_email_to: str | None = Field(default=None, validation_alias=_env("REPORT_EMAIL_TO"))
    report_email_from: str | None = Field(default=None, validation_alias=_env("REPORT_EMAIL_FROM"))
    report_smtp_host: str | None = Field(default=None, validation_alias=_env("REPORT_SMTP_HOST"))
    report_smtp_port: int = Field(
        default=587, ge=1, le=65535, validation_alias=_env("REPORT_SMTP_PORT")
    )
    report_smtp_user: str | None = Field(default=None, validation_alias=_env("REPORT_SMTP_USER"))
    report_smtp_password: str | None = Field(
        default=None, repr=False, validation_alias=_env("REPORT_SMTP_PASSWORD")
    )
    report_smtp_tls: str | None = Field(
        default=None,
        validation_alias=_env("REPORT_SMTP_TLS"),
        description="starttls, ssl or none; unset: starttls with a user, plaintext to a "
        "loopback host, otherwise the report is not sent",
    )
    report_smtp_cafile: str | None = Field(
        default=None,
        validation_alias=_env("REPORT_SMTP_CAFILE"),
        description="PEM file whose certificates alone are trusted for the report's server",
    )
    report_smtp_timeout: float = Field(
        default=30.0, gt=0, validation_alias=_env("REPORT_SMTP_TIMEOUT")
    )

    api_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("OUTREACH_API_TOKEN"),
        description="bearer token of the daemon's HTTP API; without it the API answers 401",
    )

    dashboard_users: str | None = Field(
        default=None,
        repr=False,
        validation_alias=_env("OUTREACH_DASHBOARD_USERS"),
        description="name:role:hash entries, comma-separated (hash-password makes a hash)",
    )
    dashboard_senders: str | None = Field(
        default=None,
        validation_alias=_env("OUTREACH_DASHBOARD_SENDERS"),
        description="emails of OIDC users who may send (others are viewers)",
    )
    oidc_allowed: str | None = Field(
        default=None,
        validation_alias=_env("OUTREACH_OIDC_ALLOWED"),
        description="emails and @domain entries OIDC users must match (verified email only)",
    )
    sns_cert_hosts: str = Field(
        default="",
        validation_alias=_env("OUTREACH_SNS_CERT_HOSTS"),
        description="exact hosts SNS certificates may come from besides AWS's own "
        "(sns.<region>.amazonaws.com, .com.cn), comma-separated",
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None, validation_alias=_env("OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY")
    )
    mailgun_webhook_signing_key: str | None = Field(
        default=None, repr=False, validation_alias=_env("OUTREACH_MAILGUN_WEBHOOK_SIGNING_KEY")
    )
    webhook_max_age_s: int = Field(
        default=300, ge=1, validation_alias=_env("OUTREACH_WEBHOOK_MAX_AGE_S")
    )
    sns_topic_arns: str = Field(
        default="",
        validation_alias=_env("OUTREACH_SNS_TOPIC_ARNS"),
        description="TopicArns whose SNS messages /webhooks/ses accepts, comma- or "
        "space-separated; empty refuses every SNS message",
    )
    http_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        validation_alias=_env("OUTREACH_HTTP_MAX_BODY_BYTES"),
        description="largest request body the daemon's HTTP face reads; larger ones get 413",
    )
    unsubscribe_imap_url: SecretStr | None = Field(
        default=None,
        validation_alias=_env("OUTREACH_UNSUBSCRIBE_IMAP_URL"),
        description="mailbox the List-Unsubscribe mailto requests arrive in, "
        "imaps://user:password@host:993/INBOX; the daemon reads it when set",
    )
    unsubscribe_imap_interval_s: float = Field(
        default=300,
        gt=0,
        validation_alias=_env("OUTREACH_UNSUBSCRIBE_IMAP_INTERVAL_S"),
        description="seconds between two reads of the unsubscribe mailbox by the daemon",
    )
    feedback_mailbox_interval_s: float = Field(
        default=300,
        gt=0,
        validation_alias=_env("OUTREACH_FEEDBACK_MAILBOX_INTERVAL_S"),
        description="seconds between two reads of the engines' own mailboxes by the daemon "
        "(bounces, complaints, replies)",
    )
    feedback_handled_folder: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=_env("OUTREACH_FEEDBACK_HANDLED_FOLDER"),
        description="folder a handled engine-mailbox message is copied into (it is flagged "
        "$OutreachHandled either way; nothing is ever deleted)",
    )
    feedback_reply_window_days: float = Field(
        default=30,
        gt=0,
        validation_alias=_env("OUTREACH_FEEDBACK_REPLY_WINDOW_DAYS"),
        description="a message without threading headers from an address the engine sent to "
        "this many days back at most counts as a reply",
    )
    soft_bounce_limit: int = Field(
        default=3,
        ge=1,
        validation_alias=_env("OUTREACH_SOFT_BOUNCE_LIMIT"),
        description="this many soft bounces of an address within OUTREACH_SOFT_BOUNCE_DAYS "
        "suppress it",
    )
    soft_bounce_days: float = Field(
        default=30,
        gt=0,
        validation_alias=_env("OUTREACH_SOFT_BOUNCE_DAYS"),
        description="the window soft bounces are counted in",
    )
    engine_url: SecretStr | None = Field(
        default=None,
        validation_alias=_env("OUTREACH_ENGINE_URL"),
        description="the engine URL `send` uses when neither --engine, --engine-env nor "
        "--engine-file is given (checked when a send uses it)",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("report_smtp_tls")
    @classmethod
    def _tls_mode(cls, value: str | None) -> str | None:
        if value is None:
            return None
        mode = value.strip().lower()
        if mode not in TLS_MODES:
            raise ValueError(f"must be one of {', '.join(TLS_MODES)}")
        return mode

    @field_validator("report_smtp_cafile")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be the absolute path of a PEM file, e.g. /etc/ssl/our-ca.pem")
        return value

    @field_validator("dns_nameservers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port (e.g. 127.0.0.1:53)")
        return value

    @field_validator("sns_topic_arns")
    @classmethod
    def _topic_arns(cls, value: str) -> str:
        for item in value.replace(",", " ").split():
            if not _SNS_TOPIC_ARN.fullmatch(item):
                raise ValueError(
                    f"{item[:300]!r} is not an SNS topic ARN "
                    "(arn:aws:sns:REGION:ACCOUNT:NAME; no wildcards)"
                )
        return value

    @field_validator("sns_cert_hosts")
    @classmethod
    def _exact_hosts(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if item != _LEGACY_SNS_HOSTS and not _HOST_NAME.fullmatch(item):
                raise ValueError(
                    f"{item[:100]!r} is not a host name; list exact hosts (AWS's SNS hosts are "
                    "always allowed, patterns are not)"
                )
        return value

    @property
    def sns_topics(self) -> frozenset[str]:
        """`OUTREACH_SNS_TOPIC_ARNS` as a set."""
        return frozenset(self.sns_topic_arns.replace(",", " ").split())

    @property
    def sns_listed_cert_hosts(self) -> list[str]:
        """`OUTREACH_SNS_CERT_HOSTS` as exact host names (the former default pattern, which
        meant AWS's own hosts, is dropped: those are always allowed)."""
        items = (part.strip().lower() for part in self.sns_cert_hosts.split(","))
        return [item for item in items if item and item != _LEGACY_SNS_HOSTS]

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        if value:
            _check_database_url(value)
        return value

    @field_validator("unsubscribe_imap_url")
    @classmethod
    def _imap_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_imap_url(value.get_secret_value())
            except InputError as exc:  # its message never holds the password
                raise ValueError(str(exc)) from None
        return value

    @property
    def unsubscribe_mailbox(self) -> ImapMailbox | None:
        """`OUTREACH_UNSUBSCRIBE_IMAP_URL` parsed, or None when it is not set."""
        if self.unsubscribe_imap_url is None:
            return None
        return parse_imap_url(self.unsubscribe_imap_url.get_secret_value())

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to the SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'outreach.db').resolve()}"

    @property
    def nameservers(self) -> list[tuple[str, int]]:
        """`OUTREACH_DNS_NAMESERVERS` parsed into (host, port) pairs."""
        pairs = []
        for item in filter(None, (part.strip() for part in self.dns_nameservers.split(","))):
            host, _, port = item.rpartition(":")
            pairs.append((host, int(port)))
        return pairs


def _check_database_url(value: str) -> None:
    """The URL parses and its port is a number 1-65535; the message never repeats the URL,
    which may hold a password."""
    example = "e.g. postgresql+psycopg://user:password@host:5432/outreach"
    try:
        port = make_url(value).port
    except (ValueError, ArgumentError):
        raise ValueError(f"not a database URL (is the port a number 1-65535?), {example}") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not a number 1-65535, {example}")


# Field name -> environment variable, so an error names what the user actually sets.
_ENV_NAMES = {
    name: field.validation_alias.choices[0]  # type: ignore[union-attr]
    for name, field in Settings.model_fields.items()
}


def load_settings(**overrides: object) -> Settings:
    """Read settings; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{_ENV_NAMES.get(field, field)}: {message}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None
