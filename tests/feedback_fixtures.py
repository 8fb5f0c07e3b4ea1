"""What the engine-mailbox tests share: a workflow sent through a real SMTP server to the
addresses the feedback samples are about, and each sample aimed at the delivery it answers
(its Message-IDs, X-Outreach-Delivery and Date rewritten to those of the real send)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.mailbox_feedback import classify
from outreach_core.domain.models import Delivery, SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

SAMPLES = Path(__file__).resolve().parent / "samples" / "feedback"
ENGINE = "mailbox engine"

#: sample -> (the recipient it is about, the kind it is)
AIMS: dict[str, tuple[str, str]] = {
    "postfix_hard.eml": ("nobody@contoso.example", "hard_bounce"),
    "postfix_delayed.eml": ("lena@fabrikam.example", "soft_bounce"),
    "exim_hard.eml": ("m.okafor@adatum.example", "hard_bounce"),
    "exim_delayed.eml": ("b.schulz@fabrikam.example", "soft_bounce"),
    "gmail_hard.eml": ("j.tanaka@litware.example", "hard_bounce"),
    "gmail_delayed.eml": ("d.nakamura@contoso-mail.example", "soft_bounce"),
    "microsoft_hard.eml": ("ahmed.k@wideworld.example", "hard_bounce"),
    "microsoft_delayed.eml": ("priya@proseware.example", "soft_bounce"),
    "arf_abuse.eml": ("kim.lee@mailprovider.example", "complaint"),
    "arf_headers_only.eml": ("ines@headers.example", "complaint"),
    "cpanel_auto_reply.eml": ("claire.dubois@relecloud.example", "auto_reply"),
    "gmail_vacation.eml": ("tom.becker@gmail.example", "auto_reply"),
    "outlook_auto_reply.eml": ("sofia.marin@fourthcoffee.example", "auto_reply"),
    "reply_threaded.eml": ("jose.alvarez@woodgrove.example", "reply"),
    "reply_unthreaded.eml": ("r.osei@alpineski.example", "reply"),
}
#: a recipient nothing comes back about
BYSTANDER = "quiet@example.com"
#: messages that are about none of our deliveries
OTHERS = ("newsletter.eml", "qmail_bounce.eml")


@dataclass(frozen=True)
class Sent:
    engine_id: int
    by_email: dict[str, Delivery]


def send_to_sample_recipients(ws: Workspace, smtp_url: str) -> Sent:
    """One run through the SMTP server to every address a sample is about, and a bystander."""
    rows = [{"email": email} for email, _ in AIMS.values()] + [{"email": BYSTANDER}]
    workflow = services.setup_workflow(
        ws,
        name="mailbox",
        parsed=ParsedFile("contacts.csv", ["email"], "email", rows),
        template=TemplateSource("Hello", None, "Hello there"),
        engine_url=smtp_url,
        from_email="sales@northwind.example",
        from_name="Sales",
        options=SendOptions(rate=0, dedupe_window_hours=0),
        actor="test",
        engine_name=ENGINE,
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal())
    with ws.db.connect() as conn:
        found = {d.email_normalized or "": d for d in deliveries.list_deliveries(conn, run_id)}
    engine_id = next(e.id for e in services.list_engines(ws) if e.name == ENGINE)
    return Sent(engine_id, found)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def aimed(
    name: str,
    delivery: Delivery,
    *,
    at: datetime | None = None,
    keep_delivery_id: bool = True,
    keep_message_id: bool = True,
) -> bytes:
    """The sample about `delivery`: the ids it names are the delivery's (or, when told, gone:
    then only the recipient address can find it), dated `at` (default now)."""
    raw = sample(name)
    found = classify(raw)
    assert delivery.message_id
    new_id = delivery.message_id if keep_message_id else "<unknown.1@elsewhere.example>"
    for old in set(found.original_message_ids + found.thread_ids):
        raw = raw.replace(old.encode(), new_id.encode())
    for old_delivery in found.delivery_ids:
        old_line = f"X-Outreach-Delivery: {old_delivery}".encode()
        new_line = f"X-Outreach-Delivery: {delivery.id}".encode() if keep_delivery_id else b""
        raw = raw.replace(old_line, new_line)
    date = format_datetime(at or utcnow()).encode()
    return re.sub(rb"^Date: [^\r\n]*", b"Date: " + date, raw, count=1, flags=re.MULTILINE)
