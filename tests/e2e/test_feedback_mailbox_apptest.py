"""Engine mailboxes on the dashboard under AppTest: naming one on the Engines page (password
field, shown masked), "Check mailbox" (the count, nothing changed in the mailbox), and a mailbox
that refuses the login or cannot be reached, reported on Home and the Engines page without the
password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core.adapters.workspace import Workspace
from outreach_core.services import feedback_mailboxes
from tests.e2e.dashboard import HOME, open_test_workspace
from tests.feedback_fixtures import Sent, aimed, sample, send_to_sample_recipients
from tests.imap_server import ImapTestServer
from tests.smtp_server import SmtpTestServer

PASSWORD = "box-pw-K7m-never-on-a-page"
WRONG = "box-pw-wrong-P2v-never-either"


@pytest.fixture
def imap() -> Iterator[ImapTestServer]:
    with ImapTestServer(user="sales", password=PASSWORD) as server:
        yield server


@pytest.fixture
def sent(data_dir: Path) -> Iterator[tuple[Workspace, Sent]]:
    ws = open_test_workspace(data_dir)
    with SmtpTestServer() as smtp:
        result = send_to_sample_recipients(ws, smtp.url)
    yield ws, result
    ws.close()


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "warning", "error", "success", "info")
             for e in getattr(at, kind)]  # fmt: skip
    parts += [str(t.value) for t in at.text_input]
    return "\n".join(str(p) for p in parts)


def test_engines_page_names_the_mailbox_masked_and_checks_it_without_changing_it(
    sent: tuple[Workspace, Sent], imap: ImapTestServer
) -> None:
    """Verify the URL typed into the password field is saved and shown masked, the field is
    emptied, and "Check mailbox" reports the folder's count with no message changed."""
    ws, result = sent
    imap.append(aimed("reply_threaded.eml", result.by_email["jose.alvarez@woodgrove.example"]))
    imap.append(sample("newsletter.eml"))
    imap.append(sample("qmail_bounce.eml"))
    flags_before = {uid: imap.flags(uid) for uid in imap.uids()}
    at = start("pages/engines.py")
    field = at.text_input(key=f"mailbox_url_{result.engine_id}")
    assert field.proto.type == field.proto.PASSWORD
    field.input(imap.url())
    at.button(key=f"FormSubmitter:mailbox_form_{result.engine_id}-Save mailbox").click().run()
    assert not at.exception
    assert any("Mailbox saved" in s.value and "***" in s.value for s in at.success)
    assert PASSWORD not in page_text(at)

    at.button(key=f"mailbox_check_{result.engine_id}").click().run()

    assert any("3 messages in INBOX" in s.value for s in at.success), page_text(at)
    assert PASSWORD not in page_text(at)
    assert {uid: imap.flags(uid) for uid in imap.uids()} == flags_before
    assert len(imap.uids()) == 3
    (status,) = feedback_mailboxes.mailbox_statuses(ws)
    assert status.state is None  # checking is not a pass: no mark moved


def test_refused_login_and_unreachable_mailbox_are_shown_on_home_and_engines(
    sent: tuple[Workspace, Sent], imap: ImapTestServer
) -> None:
    """Verify a pass refused by the server puts a warning on Home and on the Engines page
    naming the engine and the reason, and one against a closed port does too; the password
    (right or wrong) appears on neither page."""
    ws, result = sent
    at = start("pages/overview.py")
    assert not [w for w in at.warning if "Mailbox of engine" in w.value]
    feedback_mailboxes.set_engine_mailbox(ws, result.engine_id, imap.url(password=WRONG),
                                          actor="test")  # fmt: skip
    feedback_mailboxes.read_all(ws, holder="test")

    at = start("pages/overview.py")
    [warning] = [w.value for w in at.warning if "Mailbox of engine" in w.value]
    assert "mailbox engine" in warning and "LOGIN failed" in warning
    assert WRONG not in page_text(at) and PASSWORD not in page_text(at)
    at = start("pages/engines.py")
    assert any("LOGIN failed" in w.value for w in at.warning)
    assert WRONG not in page_text(at)

    port = imap.port
    imap.stop()
    url = f"imap://sales:{PASSWORD}@127.0.0.1:{port}/INBOX"
    feedback_mailboxes.set_engine_mailbox(ws, result.engine_id, url, actor="test")
    feedback_mailboxes.read_all(ws, holder="test")
    at = start("pages/overview.py")
    [warning] = [w.value for w in at.warning if "Mailbox of engine" in w.value]
    assert "ConnectionRefusedError" in warning and PASSWORD not in page_text(at)
    at = start("pages/engines.py")
    assert any("ConnectionRefusedError" in w.value for w in at.warning)
    assert PASSWORD not in page_text(at)
