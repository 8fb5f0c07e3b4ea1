"""The `send` CLI against a real SMTP server: one message per valid row, nothing else."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from smtp_server import SmtpTestServer

INVALID_ROWS = {
    17: "not-an-email",
    58: "",
    99: "two@@example.org",
    140: "trailing-dot@example.com.",
}
INJECTION = "Eve\r\nBcc: someone@example.net"


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def write_template(folder: Path) -> Path:
    folder.mkdir()
    (folder / "subject.txt").write_text("Hello {{ first_name }} from {{ company }}\n")
    (folder / "body.txt").write_text("Hi {{ first_name }},\nthis is for {{ recipient.email }}.\n")
    (folder / "body.html").write_text("<p>Hi <b>{{ first_name }}</b> of {{ company }}</p>\n")
    return folder


def write_contacts(path: Path, rows: int) -> dict[int, str]:
    """200 contacts; a few invalid addresses; row 3's name tries a header injection."""
    emails = {}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "First Name", "Company"])
        for n in range(1, rows + 1):
            email = INVALID_ROWS.get(n, f"person{n}@example.{('com', 'org', 'net')[n % 3]}")
            name = INJECTION if n == 3 else f"Person {n}"
            writer.writerow([email, name, f"Company {n}"])
            emails[n] = email
    return emails


def test_send_delivers_one_message_per_valid_row_and_records_the_rest(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """Verify 200 rows: every valid row arrives once with all headers and both parts."""
    contacts = tmp_path / "contacts.csv"
    emails = write_contacts(contacts, 200)
    template = write_template(tmp_path / "tpl")

    result = run_cli(
        tmp_path,
        "send",
        str(contacts),
        "--template",
        str(template),
        "--engine",
        smtp_server.url,
        "--from",
        "Outreach Team <team@example.com>",
        "--skip-mx",
        "--rate",
        "0",
        "--concurrency",
        "4",
    )
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith("run: ")
    run_id = int(first_line.removeprefix("run: "))

    arrived = smtp_server.handler.by_recipient()
    # Row 3's name puts a line break into the subject: that row cannot render (recorded).
    valid = {n: e for n, e in emails.items() if n not in INVALID_ROWS and n != 3}
    assert set(arrived) == {e.lower() for e in valid.values()}
    assert all(len(items) == 1 for items in arrived.values())
    assert len(smtp_server.handler.received) == len(valid) == 195
    # Connections are reused: 4 concurrent sessions, not one per message.
    assert smtp_server.handler.connections <= 4

    for n, email in valid.items():
        item = arrived[email][0]
        msg = item.message
        assert item.mail_from == "team@example.com"
        assert msg["From"] == "Outreach Team <team@example.com>"
        assert msg["To"] == email
        assert msg["Subject"].startswith("Hello ")
        assert msg["Date"] and msg["Message-ID"]
        assert msg["X-Outreach-Delivery"].isdigit()
        assert msg.get_content_type() == "multipart/alternative"
        parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
        assert set(parts) == {"text/plain", "text/html"}
        assert f"this is for {email}" in parts["text/plain"]
        assert f"Company {n}" in parts["text/html"]

    # The ledger agrees with the wire and with the printed summary.
    out = tmp_path / "outcome.csv"
    assert run_cli(tmp_path, "export", str(run_id), "--out", str(out)).returncode == 0
    with out.open() as handle:
        ledger = list(csv.DictReader(handle))
    assert len(ledger) == 200
    by_row = {int(r["row_number"]): r for r in ledger}
    for n in INVALID_ROWS:
        assert by_row[n]["status"] == "skipped"
        assert by_row[n]["reason"].split(":")[0] == "invalid_syntax"
    assert by_row[3]["status"] == "skipped"
    assert by_row[3]["reason"].startswith("render_error: subject")
    sent = [r for r in ledger if r["status"] == "sent"]
    assert len(sent) == 195
    wire_ids = {i.message["X-Outreach-Delivery"] for i in smtp_server.handler.received}
    assert wire_ids == {r["delivery_id"] for r in sent}
    assert "summary: 200 recipients: 195 sent, 0 failed, 0 deferred, 0 unknown, 5 skipped" in (
        result.stdout
    )

    listed = json.loads(run_cli(tmp_path, "runs", "--json").stdout)
    assert listed[0]["run"]["status"] == "COMPLETED"
    assert listed[0]["counts"]["sent"] == 195


def test_header_injection_in_a_csv_value_adds_no_header_on_the_wire(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """Verify a name with CR LF + "Bcc:" yields no Bcc header and no extra recipient.

    The name goes into the subject, where a line break is an error for that row: the row is
    skipped as a render error and every message that does go out has only its own headers.
    """
    contacts = tmp_path / "contacts.csv"
    write_contacts(contacts, 5)
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("For {{ first_name }}")
    (template / "body.txt").write_text("Hello {{ first_name }}")
    result = run_cli(
        tmp_path,
        "send",
        str(contacts),
        "--template",
        str(template),
        "--engine",
        smtp_server.url,
        "--from",
        "Team <team@example.com>",
        "--skip-mx",
        "--rate",
        "0",
    )
    assert result.returncode == 0, result.stderr
    received = smtp_server.handler.received
    assert len(received) == 4
    assert "person3@example.com" not in smtp_server.handler.by_recipient()
    assert "4 sent" in result.stdout and "1 skipped" in result.stdout
    for item in received:
        assert len(item.rcpt_tos) == 1
        assert "someone@example.net" not in item.rcpt_tos
        header_block = item.data.split(b"\r\n\r\n", 1)[0]
        header_names = [
            line.split(b":", 1)[0].lower()
            for line in header_block.split(b"\r\n")
            if line and not line[:1].isspace()
        ]
        assert b"bcc" not in header_names
        assert item.message["Bcc"] is None
        assert item.message["From"] == "Team <team@example.com>"


def test_send_exit_code_is_1_when_a_recipient_fails_and_the_ledger_says_why(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """Verify a permanent 550 fails that row only, a 451 twice is retried, exit 1."""
    contacts = tmp_path / "contacts.csv"
    write_contacts(contacts, 10)
    smtp_server.handler.refuse_rcpt["person5@example.net"] = "550 5.1.1 no such user"
    smtp_server.handler.fail_rcpt_times["person6@example.com"] = 2
    result = run_cli(
        tmp_path,
        "send",
        str(contacts),
        "--template",
        str(write_template(tmp_path / "tpl")),
        "--engine",
        smtp_server.url,
        "--skip-mx",
        "--rate",
        "0",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    arrived = smtp_server.handler.by_recipient()
    assert "person5@example.net" not in arrived
    assert len(arrived["person6@example.com"]) == 1
    assert "1 failed" in result.stdout
    run_id = result.stdout.splitlines()[0].removeprefix("run: ")
    out = tmp_path / "o.csv"
    run_cli(tmp_path, "export", run_id, "--out", str(out))
    rows = {r["email"]: r for r in csv.DictReader(out.open())}
    assert rows["person5@example.net"]["status"] == "failed"
    assert "550" in rows["person5@example.net"]["reason"]
    assert rows["person6@example.com"]["status"] == "sent"
    assert rows["person6@example.com"]["attempts"] == "3"


def test_unusable_input_exits_2_with_a_message_and_creates_no_run(tmp_path: Path) -> None:
    """Verify a missing file, a bad engine URL and a broken template each exit 2."""
    contacts = tmp_path / "contacts.csv"
    write_contacts(contacts, 3)
    template = write_template(tmp_path / "tpl")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "subject.txt").write_text("Hi {{ name ")
    (broken / "body.txt").write_text("x")
    cases = [
        (["send", str(tmp_path / "nope.csv"), "--template", str(template)], "does not exist"),
        (["send", str(contacts), "--template", str(template)], "unknown kind 'ftp'"),
        (["send", str(contacts), "--template", str(broken)], "subject: line 1"),
    ]
    for args, expected in cases:
        engine = "ftp://x" if "ftp" in expected else "outbox:///tmp/never"
        result = run_cli(tmp_path, *args, "--engine", engine)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert not result.stdout.startswith("run: ")
    listed = json.loads(run_cli(tmp_path, "runs", "--json").stdout)
    assert listed == []


def test_starttls_is_required_when_asked_and_never_silently_skipped(
    tmp_path: Path, smtp_server: SmtpTestServer
) -> None:
    """Verify tls=starttls (the default) against a server without STARTTLS sends nothing."""
    contacts = tmp_path / "contacts.csv"
    write_contacts(contacts, 3)
    url = f"smtp://127.0.0.1:{smtp_server.port}"  # no ?tls=none: STARTTLS is required
    result = run_cli(
        tmp_path,
        "send",
        str(contacts),
        "--template",
        str(write_template(tmp_path / "tpl")),
        "--engine",
        url,
        "--skip-mx",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert smtp_server.handler.received == []
    assert "PAUSED (engine error: smtp 127.0.0.1" in result.stdout
    assert "STARTTLS" in result.stdout
    assert "resume" in result.stderr
    assert "2 pending" in result.stdout
