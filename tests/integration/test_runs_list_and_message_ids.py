"""What a run leaves on the wire and in `runs`, against a real SMTP sink (aiosmtpd):

- 300 messages sent by `send`: each one's raw bytes carry `Message-ID: <…>` on one line (never
  `Message-ID:` then the id on a folded line), the id the ledger recorded for that delivery;
- `runs` lists a run paused by its engine's daily quota with its pending rows, and unknown
  outcomes in a column of their own, not added into failed.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, engines
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import EngineLimits, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from conftest import cli_env, run_cli
from smtp_server import SmtpTestServer

#: a long From domain: its Message-IDs are longer than a 78-character line
FROM = "News <news@marketing-department.subsidiary-company.example.com>"
MESSAGE_ID_LINE = re.compile(rb"Message-ID: (<[^\s<>]+>)")
RUNS_HEADER = [
    "run", "status", "created", "(UTC)", "sent", "failed", "unknown", "skipped", "pending",
    "waiting", "next", "retry", "(UTC)", "cancelled", "workflow",
]  # fmt: skip


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        yield smtp


def test_300_messages_each_carry_their_ledger_message_id_on_one_line(
    tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify 300 personalised messages arrive, each with exactly one `Message-ID:` header
    line holding the whole id (no continuation line after it), equal to the ledger's."""
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"person{n}@example.org", f"Person {n}"] for n in range(1, 301))
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hello {{ name }}\n")
    (template / "body.txt").write_text("Hi {{ name }}, this is for {{ recipient.email }}.\n")
    result = run_cli(
        tmp_path, "send", str(contacts), "--template", str(template), "--engine", sink.url,
        "--from", FROM, "--skip-mx", "--rate", "0", "--concurrency", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.splitlines()[0].removeprefix("run: ")
    ledger_csv = tmp_path / "ledger.csv"
    assert run_cli(tmp_path, "export", run_id, "--out", str(ledger_csv)).returncode == 0
    with ledger_csv.open(newline="") as handle:
        ledger = {r["delivery_id"]: r for r in csv.DictReader(handle)}
    assert len(ledger) == 300 and {r["status"] for r in ledger.values()} == {"sent"}

    received = sink.handler.received
    assert len(received) == 300
    seen = set()
    for item in received:
        lines = item.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        found = [i for i, line in enumerate(lines) if line.lower().startswith(b"message-id:")]
        assert len(found) == 1, lines
        line = lines[found[0]]
        match = MESSAGE_ID_LINE.fullmatch(line)
        assert match, line
        assert len(line) > 78  # long enough that folding would have been tempting
        assert not lines[found[0] + 1].startswith((b" ", b"\t"))
        delivery = item.message["X-Outreach-Delivery"]
        assert ledger[delivery]["message_id"] == match.group(1).decode()
        assert ledger[delivery]["email"] == item.rcpt_tos[0]
        seen.add(delivery)
    assert seen == set(ledger)


def test_runs_shows_pending_of_a_paused_run_and_unknown_apart_from_failed(
    workspace: Workspace, db_url: str, tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify a run paused by its engine's daily quota of 6 (messages that may have left:
    sent or unknown; a 550 refusal does not count) is listed by `runs` as the ledger has it:
    5 sent, 1 failed (550), 1 unknown (connection dropped after DATA) and 3 pending."""
    sink.handler.refuse_rcpt["p1@example.org"] = "550 5.1.1 no such user"
    sink.handler.drop_after_data.add("p2@example.org")
    engine = services.save_engine(
        workspace, name="quota", url=sink.url, from_email="team@example.com", from_name="Team",
        actor="test",
    )  # fmt: skip
    with workspace.db.begin() as conn:
        engines.set_limits(conn, engine.id, EngineLimits(daily_quota=6))
    audience = services.import_audience(
        workspace,
        ParsedFile(
            "c.csv", ["email"], "email", [{"email": f"p{n}@example.org"} for n in range(10)]
        ),
        name="ten",
        actor="test",
    )
    template = services.save_template(
        workspace, "hello", TemplateSource("Hello", None, "Hello"), actor="test"
    )
    workflow = services.create_workflow(
        workspace,
        name="quota run",
        audience_id=audience.id,
        template_id=template.id,
        engine_ids=[engine.id],
        options=SendOptions(
            rate=0,
            concurrency=1,
            batch_size=2,
            max_attempts=1,
            auto_pause_failure_rate=0,
            skip_mx=True,
        ),
        actor="test",
    )
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
    run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())
    assert run.status is RunStatus.PAUSED
    with workspace.db.connect() as conn:
        ledger = Counter(d.status for d in deliveries.list_deliveries(conn, run_id))
    assert ledger == {
        DeliveryStatus.SENT: 5,
        DeliveryStatus.FAILED: 1,
        DeliveryStatus.UNKNOWN: 1,
        DeliveryStatus.PENDING: 3,
    }

    listed = run_cli(tmp_path, "runs", env=cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url))
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == RUNS_HEADER
    # run, status, created (2 words), sent, failed, unknown, skipped, pending, waiting,
    # next retry, cancelled, workflow (2 words)
    assert row.split() == [
        str(run_id), "PAUSED", *f"{run.created_at:%Y-%m-%d %H:%M:%S}".split(),
        "5", "1", "1", "0", "3", "0", "-", "0", "quota", "run",
    ]  # fmt: skip
