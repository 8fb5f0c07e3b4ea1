"""An engine's own mailbox read back (Twisted's IMAP server on loopback) after a real send
through an SMTP server, on SQLite and PostgreSQL: DSNs in the Postfix, Exim, Microsoft 365 and
Gmail layouts, ARF reports, three kinds of automatic reply, replies threaded and not, and mail
about none of our deliveries, each landing in its class on its delivery; nothing deleted; a
second pass a no-op."""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core.adapters.imap_folder import HANDLED_KEYWORD
from outreach_core.adapters.store.tables import deliveries, delivery_events, engines
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.errors import InputError, MailboxError
from outreach_core.services import compliance, feedback_mailboxes
from outreach_core.services.feedback_mailboxes import read_all
from tests.feedback_fixtures import AIMS, BYSTANDER, OTHERS, Sent, aimed, sample
from tests.feedback_fixtures import send_to_sample_recipients as send
from tests.imap_server import ImapTestServer
from tests.smtp_server import SmtpTestServer

PASSWORD = "mbx-pw-Q8r/never-shown"
WRONG = "mbx-pw-wrong-Z3x-also-secret"
HOLDER = "test-daemon"


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    with ImapTestServer(user="sales", password=PASSWORD) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def sent(workspace: Workspace, smtp: SmtpTestServer, imap: ImapTestServer) -> Sent:
    result = send(workspace, smtp.url)
    assert len(smtp.handler.received) == len(AIMS) + 1
    feedback_mailboxes.set_engine_mailbox(workspace, result.engine_id, imap.url(), actor="test")
    return result


def events(ws: Workspace) -> list[tuple]:
    with ws.db.connect() as conn:
        rows = conn.execute(
            sa.select(
                delivery_events.c.delivery_id,
                delivery_events.c.kind,
                delivery_events.c.message_key,
                delivery_events.c.status,
                delivery_events.c.evidence,
                delivery_events.c.at,
            ).order_by(delivery_events.c.id)
        )
        return [tuple(r) for r in rows]


def feedbacks(ws: Workspace) -> dict[int, tuple[str | None, object]]:
    with ws.db.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.feedback, deliveries.c.feedback_at)
        )
        return {r.id: (r.feedback, r.feedback_at) for r in rows}


def suppressed(ws: Workspace) -> dict[str, str]:
    return {s.email_normalized: str(s.reason) for s in compliance.list_suppressions(ws)}


def flags(imap: ImapTestServer) -> dict[int, set[str]]:
    return {uid: imap.flags(uid) for uid in imap.uids()}


def load_everything(imap: ImapTestServer, sent: Sent) -> dict[str, int]:
    """Every sample aimed at its delivery, the others, and two hostile messages; name -> UID.
    Two samples lose ids so that the next way of finding the delivery is used: Exim's hard
    bounce keeps only its Final-Recipient, Microsoft's delay only the original's Message-ID."""
    uids = {}
    for name, (email, _kind) in AIMS.items():
        delivery = sent.by_email[email]
        raw = aimed(
            name,
            delivery,
            keep_delivery_id=name not in ("exim_hard.eml", "microsoft_delayed.eml"),
            keep_message_id=name != "exim_hard.eml",
        )
        uids[name] = imap.append(raw)
    for name in OTHERS:
        uids[name] = imap.append(sample(name))
    uids["garbage"] = imap.append(bytes(range(256)) * 40)
    huge = b"X-Junk: " + b"A" * 200_000 + b"\r\nFrom: a@b.example\r\nSubject: x\r\n\r\nbody\r\n"
    uids["huge header"] = imap.append(huge)
    return uids


def test_every_message_lands_in_its_class_on_its_delivery_and_a_second_pass_changes_nothing(
    workspace: Workspace, imap: ImapTestServer, sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify one pass over 8 DSNs (two per Postfix, Exim, Microsoft 365, Gmail), 2 ARF
    reports, 3 automatic replies, 2 replies, a newsletter, a non-standard bounce and two hostile
    messages: each event is on the right delivery with the right kind; hard bounces suppress
    (bounced), complaints suppress (complained) and count for the complaint brake, soft
    bounces do not suppress; handled messages are flagged, the rest untouched, none deleted;
    a second pass changes no event, feedback, suppression or flag; no log holds the password."""
    caplog.set_level(logging.INFO)
    uids = load_everything(imap, sent)
    count = len(imap.uids())

    (report,) = read_all(workspace, holder=HOLDER)

    assert report.error is None, report.error
    assert report.recorded == len(AIMS)
    landed = {(row[0], row[1]) for row in events(workspace)}
    expected = {(sent.by_email[email].id, kind) for email, kind in AIMS.values()}
    assert landed == expected
    assert report.counts["other"] == len(OTHERS) + 2
    by_kind = {row[1]: row for row in events(workspace)}
    assert by_kind["hard_bounce"][3] == "5.1.1"
    evidence = {(r[0], r[4]) for r in events(workspace)}
    assert (sent.by_email["r.osei@alpineski.example"].id, "sender") in evidence
    assert (sent.by_email["jose.alvarez@woodgrove.example"].id, "thread") in evidence
    assert (sent.by_email["claire.dubois@relecloud.example"].id, "sender") in evidence

    hard = {e for e, k in AIMS.values() if k == "hard_bounce"}
    complained = {e for e, k in AIMS.values() if k == "complaint"}
    assert suppressed(workspace) == {
        **{e: "bounced" for e in hard},
        **{e: "complained" for e in complained},
    }
    fb = feedbacks(workspace)
    kinds = {"hard_bounce": "bounced", "soft_bounce": "soft_bounced", "complaint": "complained",
             "auto_reply": "auto_replied", "reply": "replied"}  # fmt: skip
    for email, kind in AIMS.values():
        assert fb[sent.by_email[email].id][0] == kinds[kind], email
    assert fb[sent.by_email[BYSTANDER].id][0] is None
    with workspace.db.connect() as conn:
        assert compliance.complaint_brake(conn, sent.engine_id) is not None

    after = flags(imap)
    assert len(imap.uids()) == count
    for name, uid in uids.items():
        assert "\\Deleted" not in after[uid]
        assert "\\Seen" not in after[uid]
        if name in AIMS:
            assert after[uid] == {HANDLED_KEYWORD}, name
        else:
            assert after[uid] == set(), name

    before = (events(workspace), feedbacks(workspace), suppressed(workspace), flags(imap))
    (again,) = read_all(workspace, holder=HOLDER)
    assert again.error is None and not again.counts
    assert (events(workspace), feedbacks(workspace), suppressed(workspace), flags(imap)) == before
    assert PASSWORD not in caplog.text


def test_a_new_uidvalidity_starts_the_folder_over_without_recording_twice(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify a folder recreated (new UIDVALIDITY) is read from its start: messages already
    handled (flagged) are not recorded again, a new one is."""
    imap.append(aimed("postfix_hard.eml", sent.by_email["nobody@contoso.example"]))
    (first,) = read_all(workspace, holder=HOLDER)
    assert first.recorded == 1
    imap.mailbox().validity = 4242
    imap.append(aimed("reply_threaded.eml", sent.by_email["jose.alvarez@woodgrove.example"]))

    (second,) = read_all(workspace, holder=HOLDER)

    assert second.restarted and second.recorded == 1
    assert [row[1] for row in events(workspace)] == ["hard_bounce", "reply"]
    assert events(workspace)[1][2].split(":")[1] == "4242"


def test_soft_bounces_suppress_only_once_enough_fall_in_the_window(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify with OUTREACH_SOFT_BOUNCE_LIMIT=2: one soft bounce leaves the address, a second
    within the window suppresses it (reason bounced)."""
    ws = dataclasses.replace(
        workspace, settings=workspace.settings.model_copy(update={"soft_bounce_limit": 2})
    )
    priya = sent.by_email["priya@proseware.example"]
    imap.append(aimed("microsoft_delayed.eml", priya, at=utcnow() - timedelta(hours=5)))
    read_all(ws, holder=HOLDER)
    assert "priya@proseware.example" not in suppressed(ws)

    imap.append(aimed("postfix_delayed.eml", priya).replace(
        b"lena@fabrikam.example", b"priya@proseware.example"))  # fmt: skip
    (report,) = read_all(ws, holder=HOLDER)

    assert report.suppressed == ["priya@proseware.example"]
    assert suppressed(ws) == {"priya@proseware.example": "bounced"}


def test_refused_login_and_unreachable_host_are_recorded_without_the_password(
    workspace: Workspace, imap: ImapTestServer, sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify a wrong password and a closed port each end the pass with the error in the
    mailbox state (the URL masked, no password anywhere), and nothing raises."""
    caplog.set_level(logging.INFO)
    feedback_mailboxes.set_engine_mailbox(
        workspace, sent.engine_id, imap.url(password=WRONG), actor="test"
    )
    (report,) = read_all(workspace, holder=HOLDER)
    assert report.error and "LOGIN failed" in report.error
    (status,) = feedback_mailboxes.failing_mailboxes(workspace)
    assert status.state is not None and status.state.error == report.error
    assert "***" in status.display_url

    port = imap.port
    imap.stop()
    feedback_mailboxes.set_engine_mailbox(
        workspace, sent.engine_id, f"imap://sales:{WRONG}@127.0.0.1:{port}/INBOX", actor="test"
    )
    (report,) = read_all(workspace, holder=HOLDER)
    assert report.error and "ConnectionRefusedError" in report.error
    with workspace.db.connect() as conn:
        stored = conn.execute(sa.select(engines.c.mailbox_url_encrypted,
                                        engines.c.mailbox_display_url)).all()  # fmt: skip
    text = caplog.text + repr(stored) + repr(feedback_mailboxes.mailbox_statuses(workspace))
    assert PASSWORD not in text and WRONG not in text


def test_check_mailbox_counts_and_changes_nothing(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify "check mailbox" reports the folder's message count and leaves every message
    (flags, count) and the high-water mark as they were; a refused login is a MailboxError
    without the password."""
    imap.append(aimed("reply_threaded.eml", sent.by_email["jose.alvarez@woodgrove.example"]))
    imap.append(sample("newsletter.eml"))
    before = flags(imap)

    text = feedback_mailboxes.check_mailbox(workspace, sent.engine_id)

    assert "2 messages in INBOX" in text and PASSWORD not in text
    assert flags(imap) == before
    assert events(workspace) == []
    feedback_mailboxes.set_engine_mailbox(
        workspace, sent.engine_id, imap.url(password=WRONG), actor="test"
    )
    with pytest.raises(MailboxError) as refused:
        feedback_mailboxes.check_mailbox(workspace, sent.engine_id)
    assert "LOGIN failed" in str(refused.value) and WRONG not in str(refused.value)


def test_mailbox_url_is_checked_and_only_an_smtp_engine_takes_one(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a malformed URL is refused without repeating its password, and an engine of
    another kind (outbox) cannot name a mailbox."""
    from tests.feedback_fixtures import ENGINE

    send(workspace, f"outbox://{tmp_path / 'out'}")
    engine_id = feedback_mailboxes.engine_id_by_name(workspace, ENGINE)
    with pytest.raises(InputError) as wrong_kind:
        feedback_mailboxes.set_engine_mailbox(
            workspace, engine_id, f"imaps://u:{WRONG}@mail.example/INBOX", actor="test"
        )
    assert "SMTP" in str(wrong_kind.value) and WRONG not in str(wrong_kind.value)
    with pytest.raises(InputError) as bad:
        feedback_mailboxes.set_engine_mailbox(
            workspace, engine_id, f"pop3://u:{WRONG}@mail.example/", actor="test"
        )
    assert WRONG not in str(bad.value)


def test_handled_messages_are_copied_to_the_named_folder_and_kept_in_place(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify with OUTREACH_FEEDBACK_HANDLED_FOLDER: a handled message is copied there and
    flagged where it was (not deleted); a message about nothing of ours is not copied."""
    imap.account.addMailbox("Handled")
    ws = dataclasses.replace(
        workspace,
        settings=workspace.settings.model_copy(update={"feedback_handled_folder": "Handled"}),
    )
    bounce = imap.append(aimed("gmail_hard.eml", sent.by_email["j.tanaka@litware.example"]))
    other = imap.append(sample("newsletter.eml"))

    (report,) = read_all(ws, holder=HOLDER)

    assert report.error is None, report.error
    assert imap.uids() == [bounce, other]
    assert imap.flags(bounce) == {HANDLED_KEYWORD} and imap.flags(other) == set()
    assert len(imap.uids(folder="Handled")) == 1
    assert b"Delivery Status Notification" in imap.mailbox("Handled").messages[0].raw


def test_a_mailbox_claimed_by_another_daemon_is_left_to_it(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify the lease: while one daemon holds the mailbox another's pass reads nothing; once
    the holder finished, the other reads it."""
    from outreach_core.adapters.store import engine_mailboxes

    imap.append(aimed("postfix_hard.eml", sent.by_email["nobody@contoso.example"]))
    with workspace.db.begin() as conn:
        held = engine_mailboxes.claim(
            conn, sent.engine_id, folder="INBOX", holder="daemon-a", now=utcnow(),
            lease=timedelta(minutes=5),
        )  # fmt: skip
    assert held is not None

    (skipped,) = read_all(workspace, holder="daemon-b")
    assert skipped.skipped and events(workspace) == []

    with workspace.db.begin() as conn:
        engine_mailboxes.finish(conn, sent.engine_id, holder="daemon-a", now=utcnow(), error=None)
    (report,) = read_all(workspace, holder="daemon-b")
    assert not report.skipped and report.recorded == 1


def test_key_rotation_re_encrypts_the_mailbox_url(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify rotate-key moves the mailbox URL to the new key with the engine URLs: the
    mailbox is still read afterwards."""
    from outreach_core.services import keys

    with workspace.db.connect() as conn:
        before = conn.execute(sa.select(engines.c.mailbox_url_encrypted)).scalar_one()
    rotation = keys.rotate_key(workspace, actor="test")
    with workspace.db.connect() as conn:
        after = conn.execute(sa.select(engines.c.mailbox_url_encrypted)).scalar_one()
    assert after != before
    assert rotation.counts["engines.mailbox_url_encrypted"] == 1
    assert "0 messages in INBOX" in feedback_mailboxes.check_mailbox(workspace, sent.engine_id)


def test_a_nul_in_a_subject_does_not_stop_the_pass(
    workspace: Workspace, imap: ImapTestServer, sent: Sent
) -> None:
    """Verify a reply whose encoded subject decodes to a NUL character (which PostgreSQL
    refuses in text) is recorded with the NUL left out, and the message after it is read."""
    jose = sent.by_email["jose.alvarez@woodgrove.example"]
    raw = aimed("reply_threaded.eml", jose)
    subject = "Subject: =?utf-8?b?" + base64.b64encode(b"Re: hi\x00there").decode() + "?="
    raw = re.sub(rb"^Subject: [^\r\n]*", subject.encode(), raw, count=1, flags=re.MULTILINE)
    imap.append(raw)
    imap.append(aimed("postfix_hard.eml", sent.by_email["nobody@contoso.example"]))

    (report,) = read_all(workspace, holder=HOLDER)

    assert report.error is None and report.recorded == 2
    with workspace.db.connect() as conn:
        detail = conn.execute(
            sa.select(delivery_events.c.detail).where(delivery_events.c.kind == "reply")
        ).scalar_one()
    assert detail == "Re: hithere"


def test_a_message_over_the_size_cap_is_passed_unread(
    workspace: Workspace, imap: ImapTestServer, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify a message larger than the cap is not fetched (nor marked \\Seen or flagged) and
    the high-water mark passes it, so the message after it is read."""
    monkeypatch.setattr(feedback_mailboxes, "MAX_FEEDBACK_BYTES", 3000)
    big = imap.append(aimed("gmail_hard.eml", sent.by_email["j.tanaka@litware.example"]))
    small = imap.append(aimed("reply_unthreaded.eml", sent.by_email["r.osei@alpineski.example"]))

    (report,) = read_all(workspace, holder=HOLDER)

    assert report.counts == {"other": 1, "reply": 1}
    assert imap.flags(big) == set() and imap.flags(small) == {HANDLED_KEYWORD}
    assert "j.tanaka@litware.example" not in suppressed(workspace)
