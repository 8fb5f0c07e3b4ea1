"""OUTREACH_UNSUBSCRIBE_IMAP_URL: parsed into an ImapMailbox, refused with a reason that never
repeats the password."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from outreach_core.adapters.imap_url import ImapMailbox, Security, parse_imap_url
from outreach_core.adapters.settings import Settings, load_settings
from outreach_core.errors import ConfigError, InputError

PASSWORD = "pw-Zq81/never-shown"
QUOTED = "pw-Zq81%2Fnever-shown"


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            f"imaps://unsub%40example.com:{QUOTED}@mail.example.com/INBOX",
            ImapMailbox("mail.example.com", 993, "unsub@example.com", PASSWORD),
        ),
        (
            f"imap://unsub:{QUOTED}@mail.example.com:1143/Unsubscribe%20requests?starttls=1",
            ImapMailbox(
                "mail.example.com", 1143, "unsub", PASSWORD, "Unsubscribe requests",
                Security.STARTTLS,
            ),
        ),
        (
            f"imap://unsub:{QUOTED}@127.0.0.1:10143",
            ImapMailbox("127.0.0.1", 10143, "unsub", PASSWORD, "INBOX", Security.NONE),
        ),
        (
            f"IMAP://unsub:{QUOTED}@localhost/INBOX?starttls=0",
            ImapMailbox("localhost", 143, "unsub", PASSWORD, "INBOX", Security.NONE),
        ),
    ],
)  # fmt: skip
def test_good_urls_are_parsed(url: str, expected: ImapMailbox) -> None:
    """Verify the port defaults by security, user/password/folder are percent-decoded, and the
    folder defaults to INBOX."""
    assert parse_imap_url(url) == expected


def test_display_masks_the_password_and_repr_leaves_it_out() -> None:
    """Verify what logs and errors show of a mailbox holds the user but not the password."""
    mailbox = parse_imap_url(f"imap://unsub:{QUOTED}@mail.example.com/INBOX?starttls=1")
    assert mailbox.display == "imap://unsub:***@mail.example.com:143/INBOX?starttls=1"
    assert PASSWORD not in repr(mailbox) and QUOTED not in repr(mailbox)


@pytest.mark.parametrize(
    "url, problem",
    [
        (f"imap://unsub:{QUOTED}@mail.example.com/INBOX", "sends the password unencrypted"),
        (f"imap://unsub:{QUOTED}@10.0.0.5/INBOX", "sends the password unencrypted"),
        (f"imaps://unsub:{QUOTED}@mail.example.com/INBOX?starttls=1", "TLS already"),
        (f"pop3://unsub:{QUOTED}@mail.example.com/", "use imaps:// or imap://"),
        ("imaps://mail.example.com/INBOX", "no user or password"),
        (f"imaps://unsub:{QUOTED}@/INBOX", "no host"),
        (f"imaps://unsub:{QUOTED}@mail.example.com:99999/INBOX", "port"),
        (f"imaps://unsub:{QUOTED}@mail.example.com/INBOX?tls=1", "unknown option 'tls'"),
        (f"imaps://unsub:{QUOTED}@mail.example.com/Bo%C3%AEte", "ASCII name"),
        (f"imaps://unsub:{QUOTED}@mail.example.com/a%22b", "ASCII name"),
        (f"imap://unsub:{QUOTED}@127.0.0.1/?starttls=maybe", "use 1 or 0"),
        ("imaps://unsub:p%C3%A4ss@mail.example.com/", "must be ASCII"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url: str, problem: str) -> None:
    """Verify each mistake is named, and plain imap:// to a host off this machine is refused
    (the password would cross the network in clear)."""
    with pytest.raises(InputError, match=problem) as excinfo:
        parse_imap_url(url)
    assert PASSWORD not in str(excinfo.value) and QUOTED not in str(excinfo.value)


def test_setting_is_checked_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Verify a bad OUTREACH_UNSUBSCRIBE_IMAP_URL is a ConfigError naming the variable but not
    the password; a good one is a secret in the settings and parses into a mailbox."""
    monkeypatch.chdir(tmp_path)
    bad = f"imap://unsub:{QUOTED}@mail.example.com/INBOX"
    monkeypatch.setenv("OUTREACH_UNSUBSCRIBE_IMAP_URL", bad)
    with pytest.raises(ConfigError, match="OUTREACH_UNSUBSCRIBE_IMAP_URL: ") as excinfo:
        load_settings()
    assert PASSWORD not in str(excinfo.value) and QUOTED not in str(excinfo.value)
    with pytest.raises(ValidationError) as raw_error:  # built directly, not by load_settings
        Settings(_env_file=None)
    assert QUOTED not in str(raw_error.value) and "sends the password" in str(raw_error.value)
    monkeypatch.delenv("OUTREACH_UNSUBSCRIBE_IMAP_URL")

    settings = Settings(
        _env_file=None, OUTREACH_UNSUBSCRIBE_IMAP_URL=bad.replace("imap:", "imaps:")
    )
    assert settings.unsubscribe_mailbox == ImapMailbox("mail.example.com", 993, "unsub", PASSWORD)
    assert QUOTED not in repr(settings) and QUOTED not in str(settings.model_dump())
    assert Settings(_env_file=None).unsubscribe_mailbox is None
