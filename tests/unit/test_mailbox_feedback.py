"""Classifying what comes back to a sending mailbox, on samples written in the layouts Postfix,
Exim, Gmail and Microsoft 365 use for bounces, an ARF feedback-loop report, three kinds of
automatic reply, two replies and a newsletter (tests/samples/feedback/*.eml)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from outreach_core.domain.feedback_rules import FeedbackKind, ReplyEvidence
from outreach_core.domain.mailbox_feedback import Feedback, classify

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "feedback"

#: the Message-IDs of the deliveries the replies answer, and the recipients of the workflow
THREADED_REPLY_TO = "<173321730154.4260.3338490012277561940@outreach-host>"
OURS = frozenset({THREADED_REPLY_TO, "<173321730077.4250.5112278812039981734@outreach-host>"})
RECIPIENTS = frozenset({"r.osei@alpineski.example", "sofia.marin@fourthcoffee.example"})


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def classified(name: str) -> Feedback:
    return classify(sample(name), our_message_ids=OURS, recipients=RECIPIENTS)


#: (sample, kind, original Message-ID, X-Outreach-Delivery, recipient, status)
BOUNCES = [
    (
        "postfix_hard.eml",
        FeedbackKind.HARD_BOUNCE,
        "<173321730012.4242.1180024460591733301@outreach-host>",
        4242,
        "nobody@contoso.example",
        "5.1.1",
    ),
    (
        "postfix_delayed.eml",
        FeedbackKind.SOFT_BOUNCE,
        "<173321730312.4243.7715290145520953217@outreach-host>",
        4243,
        "lena@fabrikam.example",
        "4.4.1",
    ),
    (
        "exim_hard.eml",
        FeedbackKind.HARD_BOUNCE,
        "<173330293001.5120.4401237719873305528@outreach-host>",
        5120,
        "m.okafor@adatum.example",
        "5.1.1",  # Status says 5.0.0; the diagnostic's 550 5.1.1 is the detail
    ),
    (
        "exim_delayed.eml",
        FeedbackKind.SOFT_BOUNCE,
        "<173331663088.5131.7730194412236650918@outreach-host>",
        5131,
        "b.schulz@fabrikam.example",
        "4.2.0",  # Status says 4.0.0; the diagnostic's 451 4.2.0 is the detail
    ),
    (
        "gmail_delayed.eml",
        FeedbackKind.SOFT_BOUNCE,
        "<173341330215.7002.4410982276123904417@outreach-host>",
        7002,
        "d.nakamura@contoso-mail.example",
        "4.4.1",
    ),
    (
        "gmail_hard.eml",
        FeedbackKind.HARD_BOUNCE,
        "<173341326744.7001.2211048806436672201@outreach-host>",
        7001,
        "j.tanaka@litware.example",
        "5.1.1",
    ),
    (
        "microsoft_hard.eml",
        FeedbackKind.HARD_BOUNCE,
        "<173347323001.8100.5522209190012931187@outreach-host>",
        8100,
        "ahmed.k@wideworld.example",
        "5.1.1",
    ),
    (
        "microsoft_delayed.eml",
        FeedbackKind.SOFT_BOUNCE,
        "<173347323055.8101.9001127731002294415@outreach-host>",
        8101,
        "priya@proseware.example",
        "4.4.7",
    ),
]


@pytest.mark.parametrize(("name", "kind", "message_id", "delivery", "recipient", "status"), BOUNCES)
def test_bounce_samples_name_the_delivery_and_the_verdict(
    name: str, kind: FeedbackKind, message_id: str, delivery: int, recipient: str, status: str
) -> None:
    """Verify each DSN is a hard or soft bounce and carries what finds the delivery: the
    returned original's Message-ID and X-Outreach-Delivery, the Final-Recipient, the status."""
    feedback = classified(name)
    assert feedback.kind is kind
    assert feedback.original_message_ids == (message_id,)
    assert feedback.delivery_ids == (delivery,)
    assert recipient in feedback.recipients
    assert feedback.status == status
    assert feedback.action == ("failed" if kind is FeedbackKind.HARD_BOUNCE else "delayed")
    assert feedback.parse_error is None


def test_bounce_diagnostic_is_the_remote_servers_words_on_one_line() -> None:
    """Verify the Diagnostic-Code is kept unfolded (Postfix folds it over two lines)."""
    postfix = classified("postfix_hard.eml")
    assert postfix.diagnostic == (
        "smtp; 550 5.1.1 <nobody@contoso.example>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    microsoft = classified("microsoft_hard.eml")
    assert microsoft.diagnostic == "smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    assert classified("microsoft_delayed.eml").diagnostic == ""  # Microsoft gives none


def test_bounce_from_microsoft_and_gmail_is_a_bounce_though_it_threads_to_our_message() -> None:
    """Verify an NDR whose In-Reply-To names our message (Microsoft 365 and Gmail thread their
    NDRs) is a bounce, not a reply, and still reports the threading id."""
    ours = "<173347323001.8100.5522209190012931187@outreach-host>"
    feedback = classify(sample("microsoft_hard.eml"), our_message_ids={ours})
    assert feedback.kind is FeedbackKind.HARD_BOUNCE
    assert feedback.thread_ids == (ours,)
    assert feedback.reply_evidence is None


def test_bounce_time_and_sender_are_read_from_the_headers() -> None:
    """Verify the Date becomes an aware datetime in its own offset and From the mail system."""
    exim = classified("exim_hard.eml")
    assert exim.date == datetime(2024, 12, 4, 9, 2, 11, tzinfo=UTC)
    assert exim.date is not None and exim.date.utcoffset() == timedelta(hours=1)
    assert exim.sender == "Mailer-Daemon@mail.tailspin.example"
    assert exim.subject == "Mail delivery failed: returning message to sender"


def test_dsn_statuses_list_every_recipient_block() -> None:
    """Verify the DSN's recipient blocks are all kept with their own outcome."""
    (entry,) = classified("postfix_delayed.eml").statuses
    assert entry.final_recipient == entry.original_recipient == "lena@fabrikam.example"
    assert entry.action == "delayed"
    assert entry.outcome is FeedbackKind.SOFT_BOUNCE
    assert entry.diagnostic.startswith("X-Postfix; connect to mx.fabrikam.example")


def test_dsn_with_a_failed_and_a_delayed_recipient_is_a_hard_bounce() -> None:
    """Verify one permanent failure among several recipients decides: hard bounce with that
    recipient's status, and both recipients listed."""
    raw = sample("postfix_hard.eml")
    block = b"Final-Recipient: rfc822; later@contoso.example\nAction: delayed\nStatus: 4.4.1\n\n"
    raw = raw.replace(
        b"Final-Recipient: rfc822; nobody", block + b"Final-Recipient: rfc822; nobody"
    )
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.HARD_BOUNCE
    assert feedback.status == "5.1.1"
    assert [s.outcome for s in feedback.statuses] == [
        FeedbackKind.SOFT_BOUNCE,
        FeedbackKind.HARD_BOUNCE,
    ]
    assert feedback.recipients == ("later@contoso.example", "nobody@contoso.example")


def test_delivered_notice_is_other_but_names_the_original() -> None:
    """Verify a success DSN (Action: delivered, 2.0.0) is no bounce, yet keeps the ids."""
    raw = sample("postfix_hard.eml").replace(b"Action: failed", b"Action: delivered")
    feedback = classify(raw.replace(b"Status: 5.1.1", b"Status: 2.0.0"))
    assert feedback.kind is FeedbackKind.OTHER
    assert feedback.delivery_ids == (4242,)
    assert feedback.statuses[0].status == "2.0.0"
    assert feedback.status is None


def test_arf_report_is_a_complaint_naming_the_original() -> None:
    """Verify a feedback-loop report (message/rfc822 original) is a complaint with the original
    Message-ID, our delivery id and the Original-Rcpt-To."""
    feedback = classified("arf_abuse.eml")
    assert feedback.kind is FeedbackKind.COMPLAINT
    assert feedback.feedback_type == "abuse"
    assert feedback.original_message_ids == (
        "<173374191011.9300.6634150021993815530@outreach-host>",
    )
    assert feedback.delivery_ids == (9300,)
    assert feedback.recipients == ("kim.lee@mailprovider.example",)
    assert feedback.status is None


def test_arf_report_with_redacted_headers_only_is_matched_by_our_ids() -> None:
    """Verify an ARF report returning only the (redacted) headers still yields the Message-ID
    and X-Outreach-Delivery, and no recipient address."""
    feedback = classified("arf_headers_only.eml")
    assert feedback.kind is FeedbackKind.COMPLAINT
    assert feedback.original_message_ids == (
        "<173384459801.5200.1287654091237765110@outreach-host>",
    )
    assert feedback.delivery_ids == (5200,)
    assert feedback.recipients == ()


def test_not_spam_feedback_report_is_no_complaint() -> None:
    """Verify a report of Feedback-Type not-spam is left as other, with its type."""
    raw = sample("arf_abuse.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.OTHER
    assert feedback.feedback_type == "not-spam"
    assert feedback.delivery_ids == (9300,)


@pytest.mark.parametrize(
    ("name", "sender"),
    [
        ("outlook_auto_reply.eml", "sofia.marin@fourthcoffee.example"),
        ("gmail_vacation.eml", "tom.becker@gmail.example"),
        ("cpanel_auto_reply.eml", "claire.dubois@relecloud.example"),
    ],
)
def test_auto_replies_are_not_replies(name: str, sender: str) -> None:
    """Verify the Outlook, Gmail and autoresponder notices are auto_reply even when they
    thread to our message or come from a recipient."""
    feedback = classified(name)
    assert feedback.kind is FeedbackKind.AUTO_REPLY
    assert feedback.sender == sender
    assert feedback.reply_evidence is None


def test_auto_reply_keeps_the_threading_ids_to_find_the_delivery() -> None:
    """Verify the Outlook auto-reply names the delivery it answers."""
    feedback = classified("outlook_auto_reply.eml")
    assert feedback.thread_ids == ("<173321730077.4250.5112278812039981734@outreach-host>",)
    assert feedback.subject == "Automatic reply: Quick question about your roadmap"


def test_threaded_reply_is_a_reply_with_its_time() -> None:
    """Verify a Gmail reply whose In-Reply-To is our Message-ID is a threaded reply, with the
    decoded sender address and the Date."""
    feedback = classified("reply_threaded.eml")
    assert feedback.kind is FeedbackKind.REPLY
    assert feedback.reply_evidence is ReplyEvidence.THREAD
    assert feedback.thread_ids == (THREADED_REPLY_TO,)
    assert feedback.sender == "jose.alvarez@woodgrove.example"
    assert feedback.date == datetime(2024, 12, 4, 15, 48, 5, tzinfo=timezone(timedelta(hours=1)))
    assert (
        feedback.message_id == "<CAH2f8Lk+Vb9mZwq1nT7xQpRy6sD3eU0aJ4cG8hF2kN5oP7r@mail.gmail.com>"
    )


def test_threaded_reply_to_a_message_not_ours_is_other() -> None:
    """Verify the same reply is other when its ids name none of ours and its sender is no
    recipient."""
    feedback = classify(sample("reply_threaded.eml"), our_message_ids={"<else@outreach-host>"})
    assert feedback.kind is FeedbackKind.OTHER
    assert feedback.reply_evidence is None


def test_unthreaded_reply_matches_by_sender_in_any_case() -> None:
    """Verify a Latin-1 reply without In-Reply-To/References from a recipient (From in mixed
    case) is a reply by sender; without the recipient set it is other."""
    feedback = classified("reply_unthreaded.eml")
    assert feedback.kind is FeedbackKind.REPLY
    assert feedback.reply_evidence is ReplyEvidence.SENDER
    assert feedback.sender == "R.Osei@AlpineSki.example"
    assert feedback.thread_ids == ()
    assert classify(sample("reply_unthreaded.eml")).kind is FeedbackKind.OTHER


def test_newsletter_is_other_though_it_says_precedence_bulk() -> None:
    """Verify list mail (List-Id, List-Unsubscribe, Precedence: bulk) naming none of our
    messages is other, not an auto-reply."""
    feedback = classified("newsletter.eml")
    assert feedback.kind is FeedbackKind.OTHER
    assert feedback.sender == "news@adventure-works.example"


def test_non_standard_bounce_is_left_for_a_person() -> None:
    """Verify a qmail-style plain-text bounce from MAILER-DAEMON is other (not guessed at,
    and not a reply although it comes back from the recipient's domain)."""
    raw = sample("qmail_bounce.eml")
    feedback = classify(raw, recipients={"MAILER-DAEMON@oldhost.example"})
    assert feedback.kind is FeedbackKind.OTHER
    assert feedback.sender == "MAILER-DAEMON@oldhost.example"
    assert feedback.date == datetime(2024, 12, 11, 8, 0, 12, tzinfo=UTC)


def test_every_sample_lands_in_its_class() -> None:
    """Verify the whole sample set, so a new sample cannot go unclassified unnoticed."""
    expected = {
        "arf_abuse.eml": FeedbackKind.COMPLAINT,
        "arf_headers_only.eml": FeedbackKind.COMPLAINT,
        "cpanel_auto_reply.eml": FeedbackKind.AUTO_REPLY,
        "exim_delayed.eml": FeedbackKind.SOFT_BOUNCE,
        "exim_hard.eml": FeedbackKind.HARD_BOUNCE,
        "gmail_delayed.eml": FeedbackKind.SOFT_BOUNCE,
        "gmail_hard.eml": FeedbackKind.HARD_BOUNCE,
        "gmail_vacation.eml": FeedbackKind.AUTO_REPLY,
        "microsoft_delayed.eml": FeedbackKind.SOFT_BOUNCE,
        "microsoft_hard.eml": FeedbackKind.HARD_BOUNCE,
        "newsletter.eml": FeedbackKind.OTHER,
        "outlook_auto_reply.eml": FeedbackKind.AUTO_REPLY,
        "postfix_delayed.eml": FeedbackKind.SOFT_BOUNCE,
        "postfix_hard.eml": FeedbackKind.HARD_BOUNCE,
        "qmail_bounce.eml": FeedbackKind.OTHER,
        "reply_threaded.eml": FeedbackKind.REPLY,
        "reply_unthreaded.eml": FeedbackKind.REPLY,
    }
    found = {path.name: classified(path.name).kind for path in SAMPLES.glob("*.eml")}
    assert found == expected


def test_crlf_line_endings_classify_the_same() -> None:
    """Verify samples with CRLF line ends (as IMAP delivers them) give the same feedback."""
    for path in SAMPLES.glob("*.eml"):
        raw = path.read_bytes()
        crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert classify(crlf, our_message_ids=OURS, recipients=RECIPIENTS) == classified(
            path.name
        ), path.name
