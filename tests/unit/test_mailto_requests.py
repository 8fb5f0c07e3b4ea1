"""Mailto unsubscribe requests: what one message says and what is done with it (pure)."""

from __future__ import annotations

import imaplib
import re
from email.header import Header
from email.message import EmailMessage

import pytest

from outreach_core.adapters.crypto import derived_key
from outreach_core.adapters.imap_mailbox import redact
from outreach_core.domain.unsubscribe_links import token
from outreach_core.domain.unsubscribe_requests import (
    MAX_MESSAGE_BYTES,
    Action,
    Decision,
    FlagReason,
    MailRequest,
    decide,
    decide_message,
    find_token,
    parse_request,
)

KEY = derived_key(b"0" * 44, "unsubscribe")
ANN = "ann.smith@example.org"
ANN_TOKEN = token(KEY, ANN)


def message(*, sender: str | None, subject: str | None, body: str = "") -> bytes:
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = "unsub@example.com"
    if subject is not None:
        msg["Subject"] = subject
    msg.set_content(body or "Please take me off the list.")
    return msg.as_bytes()


def test_valid_request_with_display_name_and_mixed_case_suppresses_the_address() -> None:
    """Verify `"Ann Smith" <Ann.Smith@EXAMPLE.org>` with her token is suppressed: the display
    name is dropped, and the token (made for the lower-cased address) still matches."""
    raw = message(sender='"Ann Smith" <Ann.Smith@EXAMPLE.org>', subject=f"unsubscribe {ANN_TOKEN}")
    decision = decide_message(raw, KEY)
    assert decision.action is Action.SUPPRESS
    assert decision.email == "Ann.Smith@EXAMPLE.org"
    assert decision.reason is None
    assert str(decision) == "suppressed Ann.Smith@EXAMPLE.org"


def test_token_made_for_someone_else_is_flagged_not_suppressed() -> None:
    """Verify a forged request (Bob's From, Ann's token) and a token from another key are
    both refused as token_mismatch, naming the sender so a human can look."""
    forged = decide_message(
        message(sender="bob@example.org", subject=f"unsubscribe {ANN_TOKEN}"), KEY
    )
    assert forged == Decision.flag(FlagReason.TOKEN_MISMATCH, "bob@example.org")
    other_key = token(derived_key(b"1" * 44, "unsubscribe"), ANN)
    assert decide_message(message(sender=ANN, subject=f"unsubscribe {other_key}"), KEY) == (
        Decision.flag(FlagReason.TOKEN_MISMATCH, ANN)
    )


@pytest.mark.parametrize(
    "subject",
    [
        "unsubscribe",
        None,
        "Please remove me",
        f"unsubscribe {ANN_TOKEN}x",  # 23 characters: not a token
        f"unsubscribe {ANN_TOKEN[:-1]}",  # 21 characters: cut short
        f"{ANN_TOKEN}",  # a token without the word
    ],
)
def test_missing_or_malformed_token_is_flagged_as_no_token(subject: str | None) -> None:
    """Verify a request without a whole token after `unsubscribe` is flagged, not guessed."""
    decision = decide_message(message(sender=ANN, subject=subject), KEY)
    assert decision == Decision.flag(FlagReason.NO_TOKEN, ANN)


@pytest.mark.parametrize(
    "subject",
    [
        f"Re: unsubscribe {ANN_TOKEN}",
        f"UNSUBSCRIBE   {ANN_TOKEN}",
        f"Fwd: [list] Unsubscribe: {ANN_TOKEN} (sent from my phone)",
    ],
)
def test_token_is_found_after_prefixes_in_any_case(subject: str) -> None:
    """Verify replies and forwards that decorate the subject still carry the token."""
    assert find_token(subject) == ANN_TOKEN
    assert decide_message(message(sender=ANN, subject=subject), KEY).action is Action.SUPPRESS


def test_rfc2047_encoded_subject_is_decoded_before_the_search() -> None:
    """Verify a client that encodes the subject (=?utf-8?b?…?=, also split over two encoded
    words) is understood."""
    encoded = Header(f"unsubscribe {ANN_TOKEN} merci beaucoup é", "utf-8").encode(maxlinelen=30)
    assert "=?utf-8?" in encoded and ANN_TOKEN not in encoded
    raw = (f"From: {ANN}\r\nTo: unsub@example.com\r\nSubject: {encoded}\r\n\r\nbye\r\n").encode()
    assert parse_request(raw) == MailRequest(sender=ANN, token=ANN_TOKEN)
    assert decide_message(raw, KEY).action is Action.SUPPRESS


def test_multipart_message_token_in_the_plain_text_part() -> None:
    """Verify a multipart/alternative request whose subject lost the token (the user typed
    their own) is read from its text/plain part, quoted-printable and all; the HTML part is
    not searched."""
    msg = EmailMessage()
    msg["From"] = f"Ann <{ANN}>"
    msg["To"] = "unsub@example.com"
    msg["Subject"] = "stop please"
    msg.set_content(f"unsubscribe {ANN_TOKEN}\n" + "é" * 80, cte="quoted-printable")
    msg.add_alternative("<p>bye</p>", subtype="html")
    raw = msg.as_bytes()
    assert b"multipart/alternative" in raw
    assert parse_request(raw).token == ANN_TOKEN
    assert decide_message(raw, KEY).action is Action.SUPPRESS

    html_only = EmailMessage()
    html_only["From"] = ANN
    html_only["Subject"] = "stop"
    html_only.set_content("plain: nothing here")
    html_only.add_alternative(f"<p>unsubscribe {ANN_TOKEN}</p>", subtype="html")
    assert decide_message(html_only.as_bytes(), KEY) == Decision.flag(FlagReason.NO_TOKEN, ANN)


@pytest.mark.parametrize(
    "sender", [None, "", "Ann Smith", f"{ANN}, bob@example.org", "undisclosed-recipients:;"]
)
def test_without_exactly_one_sender_address_the_message_is_flagged(sender: str | None) -> None:
    """Verify no From, a name without an address, two addresses or an empty group: no sender
    to suppress, even with a token."""
    raw = message(sender=sender, subject=f"unsubscribe {ANN_TOKEN}")
    assert decide_message(raw, KEY) == Decision.flag(FlagReason.NO_SENDER)


def test_oversized_message_is_not_parsed() -> None:
    """Verify a message past MAX_MESSAGE_BYTES is flagged too_large, even with a good token."""
    raw = message(sender=ANN, subject=f"unsubscribe {ANN_TOKEN}", body="x" * MAX_MESSAGE_BYTES)
    assert decide_message(raw, KEY) == Decision.flag(FlagReason.TOO_LARGE)


def test_decision_repr_and_text_never_show_the_token() -> None:
    """Verify the token is left out of what may be printed or logged."""
    decision = decide(MailRequest(sender=ANN, token=ANN_TOKEN), KEY)
    assert decision.action is Action.SUPPRESS and decision.token == ANN_TOKEN
    for text in (repr(decision), str(decision), repr(MailRequest(ANN, ANN_TOKEN))):
        assert ANN_TOKEN not in text
    flagged = decide(MailRequest(sender="bob@example.org", token=ANN_TOKEN), KEY)
    assert ANN_TOKEN not in repr(flagged) + str(flagged)
    assert "bob@example.org" in str(flagged)


@pytest.mark.parametrize(
    "password", ["plain-Secret9", 'back\\slash"quote', 'it\'s "both" \\ kinds']
)
def test_redact_masks_the_password_however_an_imap_error_spells_it(password: str) -> None:
    """Verify the password is masked in the texts imaplib raises with when a server echoes the
    LOGIN line: its reply as a list of bytes (backslashes doubled again by the repr), a str
    repr, and the password itself; no word of the password is left."""
    wire = imaplib.IMAP4._quote(None, password)  # type: ignore[arg-type]  # as LOGIN sends it
    reply = [f"a1 LOGIN unsub {wire} rejected".encode()]
    texts = [
        f"LOGIN command error: BAD {reply}",
        str(imaplib.IMAP4.error(reply[-1])),
        f"unexpected response: {wire!r}",
        f"password {password} echoed",
    ]
    words = re.findall(r"[A-Za-z0-9]{4,}", password)
    for text in texts:
        masked = redact(text, password)
        assert "***" in masked, text
        assert not [w for w in words if w in masked], masked
