"""Engine URLs with secrets that hold URL delimiters: read on the last `@`, refused when it
cannot be told where the secret ends, and never shown (display, errors) in any part."""

from __future__ import annotations

import string
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from outreach_core.adapters.senders import engine_url, mask_url, open_sender, parse_engine_url
from outreach_core.adapters.senders.smtp import SmtpConfig
from outreach_core.adapters.url_secrets import SECRET_PARAMETERS, scrub, secret_texts
from outreach_core.errors import InputError, SendError, SendErrorKind


def pieces(secret: str) -> list[str]:
    """Every 3-character piece of the secret: none may show in what is displayed."""
    return [secret[i : i + 3] for i in range(len(secret) - 2)]


def shown(text: str, secret: str) -> list[str]:
    return [piece for piece in pieces(secret) if piece in text]


def smtp(url: str) -> SmtpConfig:
    kind, config = engine_url.engine_config(url)
    assert isinstance(config, SmtpConfig), kind
    return config


@pytest.mark.parametrize(
    "password",
    ["8421#Kx9zz", "pa/ss9Wq", "p@ss@w0rd", "a?tls=none", "Kx:9:zz", "m/x#y?z@w%41"],
)
def test_a_password_with_delimiters_is_read_on_the_last_at(password: str) -> None:
    """Verify `#`, `/`, `?`, `@` and `:` typed in a password are read as the password: the
    host, port and options after the last `@` are the real ones, the display hides it all."""
    url = f"smtp://bob:{password}@mail.example.com:2525?tls=none"
    config = smtp(url)
    decoded = password.replace("%41", "A")  # percent-decoded like any URL
    assert (config.username, config.password) == ("bob", decoded)
    assert (config.host, config.port, config.tls) == ("mail.example.com", 2525, "none")
    parsed = parse_engine_url(url)
    assert parsed.display == "smtp://bob:***@mail.example.com:2525?tls=none"
    assert password not in repr(parsed)
    # the same password percent-encoded reads the same
    assert smtp(f"smtp://bob:{quote(decoded, safe='')}@mail.example.com:2525?tls=none") == config


def test_the_reported_url_is_read_and_masked() -> None:
    """Verify `smtp://bob:8421#Kx9zz@host:587` is bob with password 8421#Kx9zz on host:587,
    and its display form holds nothing of the password."""
    config = smtp("smtp://bob:8421#Kx9zz@host:587")
    assert (config.username, config.password, config.host, config.port) == (
        "bob", "8421#Kx9zz", "host", 587,
    )  # fmt: skip
    display = parse_engine_url("smtp://bob:8421#Kx9zz@host:587").display
    assert display == "smtp://bob:***@host:587"
    assert shown(display, "8421#Kx9zz") == []


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        # an `@` before the first delimiter: `bob:p@ss` could be user, password and host
        ("smtp://bob:p@ss#w0rdX@host:587", "p@ss#w0rdX"),
        ("smtp://bob:Zq7@mail.example.com?tls=none&x=Yv8@other.example", "Zq7"),
        ("smtp://bob:Ab9@relay/Cd8@host", "Ab9@relay/Cd8"),
        # a user name holding a delimiter
        ("smtp://bo/b:Secr3tWq@host", "Secr3tWq"),
        # no `@` at all: the password has become the "port" or a fragment, path or option
        ("smtp://bob:8421#Kx9zz", "8421#Kx9zz"),
        ("smtp://bob:pa/ssWq", "pa/ssWq"),
        ("smtp://bob:Pw9xQ", "Pw9xQ"),
        ("smtp://bob:12?xyzQ=1", "12?xyzQ=1"),
        ("smtp://bob:1234/QwErTy", "1234/QwErTy"),
        ("smtps://bob:Tz9#frag", "Tz9#frag"),
        ("ses://AKIA:ab/cd@ef@eu-west-1/x", "ab/cd@ef"),
        ("smtp://bob:Lq\nBz9Wx@host", "Lq\nBz9Wx"),
        ("bob:Kx9zzQ@host:587", "Kx9zzQ"),
    ],
)
def test_unreadable_urls_are_refused_without_any_part_of_the_secret(url: str, secret: str) -> None:
    """Verify a URL where it cannot be told where the secret ends is refused with an
    InputError that shows no 3-character piece of it and says what to do."""
    with pytest.raises(InputError) as refused:
        parse_engine_url(url)
    message = str(refused.value)
    assert message.startswith("engine URL: ")
    assert shown(message, secret) == [], message
    if "@" in url:  # what precedes the last `@` is masked, whatever it holds
        assert shown(mask_url(url), secret) == [], mask_url(url)


def test_ambiguous_urls_say_how_to_encode_the_password() -> None:
    """Verify the refusal names the percent-encoding of each delimiter."""
    with pytest.raises(InputError) as refused:
        parse_engine_url("smtp://bob:p@ss#w0rd@host:587")
    for hint in ("%40", "%23", "%2F", "%3F", "percent-encode the password"):
        assert hint in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mail.example.com:abc",
        "smtp://mail.example.com:0",
        "smtp://mail.example.com:65536",
        "smtp://mail.example.com:99999999999999999999",
        "smtp://mail.example.com:-1",
        "smtp://bob:pw@mail.example.com:5x7",
        "mailgun://key-abc@mg.example.com:x",
        "smtp://[::1]:port",
        "sendgrid://SG.key@?endpoint=http://127.0.0.1:notaport",
    ],
)
def test_a_malformed_port_is_a_clear_input_error(url: str) -> None:
    """Verify a port that is not 1-65535 is an InputError naming the port, no traceback."""
    with pytest.raises(InputError, match="port"):
        parse_engine_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://bob:pw@h:25", "smtp://bob:***@h:25"),
        ("smtp://bob@h:25", "smtp://bob@h:25"),
        ("smtp://h:25?tls=none", "smtp://h:25?tls=none"),
        ("sendgrid://SG.key@?region=eu", "sendgrid://***@?region=eu"),
        ("mailgun://key-1:x@mg.example.com", "mailgun://***@mg.example.com"),
        ("ses://AKIA:se/cr@et@eu-west-1", "ses://AKIA:***@eu-west-1"),
        ("outbox:///var/mail@box/out", "outbox:///var/mail@box/out"),
        ("postgresql+psycopg://u:p%40w@db/x?sslmode=require", "postgresql+psycopg://u:***@db/x?sslmode=require"),
        ("https://h/x?api-key=abc&Token=t&page=2", "https://h/x?api-key=***&Token=***&page=2"),
        ("mssql+pyodbc://?odbc_connect=DSN%3Dx%3BPWD%3Dsecret", "mssql+pyodbc://?odbc_connect=***"),
        # the last `@` decides, even in an option: more is hidden, never less
        ("sendgrid://K@?endpoint=http://u:pw@127.0.0.1:1", "sendgrid://***@127.0.0.1:1"),
        ("sendgrid://K@?endpoint=http%3A%2F%2Fu%3Apw%40h", "sendgrid://***@?endpoint=http://u:***@h"),
        ("smtp://h:25#access_token=x", "smtp://h:25#***"),
        ("smtp://bob:pa/ss", "smtp://***"),
        ("user:secret@host", "***@host"),
    ],
)  # fmt: skip
def test_mask_url_hides_credentials_query_secrets_and_fragments(url: str, expected: str) -> None:
    """Verify the one masked form: from `://` to the last `@`, password-like parameters (any
    case, `-` or `_`), connection strings inside a value, endpoints with credentials, and
    fragments; a folder path with an `@` is no credential."""
    assert mask_url(url) == expected


@pytest.mark.parametrize("name", sorted(SECRET_PARAMETERS))
def test_every_password_like_parameter_is_masked(name: str) -> None:
    """Verify each listed parameter name (and its upper-case form) has its value masked."""
    for spelled in (name, name.upper()):
        assert (
            mask_url(f"sqlite:///x.db?{spelled}=Hunter2Q&a=1")
            == f"sqlite:///x.db?{spelled}=***&a=1"
        )


def test_scrub_removes_raw_and_decoded_secrets() -> None:
    """Verify a message echoing the password raw or decoded is scrubbed, the user kept."""
    url = "smtp://mailer:p%40ss%2Fw0rd@h:25"
    assert secret_texts(url) == ["p%40ss%2Fw0rd", "p@ss/w0rd"]
    assert scrub("535 bad p@ss/w0rd for mailer", url) == "535 bad *** for mailer"
    sendgrid = "sendgrid://SG.abc@"
    assert scrub("key SG.abc refused", sendgrid) == "key *** refused"


# passwords from the characters that matter to a URL parser, and some others
PASSWORD = st.text(
    alphabet="@#/?:%&=;[]" + string.ascii_letters + string.digits, min_size=3, max_size=24
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=PASSWORD)
@example(password="8421#Kx9zz")
@example(password="ab@cd#ef")
@example(password="%zz%41")
def test_any_password_is_either_read_exactly_or_refused_without_a_trace(password: str) -> None:
    """Verify for any typed password: the URL is read with exactly that (percent-decoded)
    password and the right host, or refused; neither the display nor the error shows a
    3-character piece of it (pieces the fixed text holds anyway aside)."""
    url = f"smtp://bob:{password}@mail.example.com:587"
    fixed = "smtp://bob:***@mail.example.com:587 engine URL"
    secret_pieces = [p for p in pieces(password) if p not in fixed]
    try:
        parsed = parse_engine_url(url)
    except InputError as exc:
        text = str(exc)
        assert [p for p in secret_pieces if p in text and p not in engine_url.ENCODE_HINT] == []
        return
    config = smtp(url)
    assert (config.host, config.port, config.username) == ("mail.example.com", 587, "bob")
    assert config.password == (unquote(password) or None)
    assert parsed.display == "smtp://bob:***@mail.example.com:587"


def test_options_are_named_in_errors_only_where_no_password_can_hide() -> None:
    """Verify a bad option after the credentials is named (tls=x), and one in a URL without
    `@` whose start looks like user:password is not (it may be the password's end)."""
    with pytest.raises(InputError, match=r"tls=x is not one of"):
        parse_engine_url("smtp://bob:Pw9Qz@relay.example.com?tls=x")
    with pytest.raises(InputError, match=r"unknown option 'tsl' \(did you mean tls\?\)"):
        parse_engine_url("smtp://relay.example.com?tsl=none")
    for url in (
        "smtp://bob:12?tls=Kx9Qz",
        "smtp://bob:12?Kx9Qz=1",
        "sendgrid://K@h:1?region=Kx9Qz",
    ):
        with pytest.raises(InputError) as refused:
            parse_engine_url(url)
        assert "Kx9" not in str(refused.value)


def test_smtp_urls_take_a_cafile_and_a_timeout() -> None:
    """Verify `cafile` (an absolute path, percent-decoded) and `timeout` are read for smtp
    and smtps, and shown as they are (neither is a secret)."""
    config = smtp("smtp://bob:Pw9Qz@relay.internal:2525?tls=starttls&cafile=/etc/ssl/our%20ca.pem")
    assert (config.cafile, config.tls, config.port) == ("/etc/ssl/our ca.pem", "starttls", 2525)
    config = smtp("smtps://bob:Pw9Qz@relay.internal?timeout=7.5&cafile=/etc/ca.pem")
    assert (config.cafile, config.tls, config.port, config.timeout) == (
        "/etc/ca.pem",
        "ssl",
        465,
        7.5,
    )
    assert smtp("smtp://relay.internal").cafile is None
    shown_url = parse_engine_url("smtp://bob:Pw9Qz@relay.internal?cafile=/etc/ca.pem").display
    assert shown_url == "smtp://bob:***@relay.internal?cafile=/etc/ca.pem"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtp://relay.internal?cafile=ca.pem", "cafile=ca.pem must be an absolute path"),
        ("smtp://relay.internal?tls=none&cafile=/ca.pem", "cafile applies to TLS only"),
        ("smtp://relay.internal?cafle=/ca.pem", r"unknown option 'cafle' \(did you mean cafile"),
    ],
)
def test_a_cafile_that_cannot_be_used_is_refused_saying_why(url: str, message: str) -> None:
    """Verify a relative cafile, one on a plaintext engine and a misspelt option are refused."""
    with pytest.raises(InputError, match=message):
        parse_engine_url(url)


def test_a_cafile_the_engine_cannot_use_stops_it_when_it_opens(tmp_path: Path) -> None:
    """Verify a missing file and a file without a PEM certificate are engine errors naming
    the file and what it must be, raised when the sender opens (before any connection)."""
    missing = tmp_path / "nowhere.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    for path, said in [(missing, "cannot be read (No such file or directory)"),
                       (garbage, "holds no PEM certificate")]:  # fmt: skip
        with pytest.raises(SendError) as refused:
            open_sender(f"smtp://bob:Pw9Qz@relay.internal?cafile={path}", concurrency=1)
        assert refused.value.kind is SendErrorKind.ENGINE
        assert f"the engine URL's cafile {path} {said}" in str(refused.value)
        assert "Pw9Qz" not in str(refused.value)
