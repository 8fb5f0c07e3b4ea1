"""`python -m outreach_core validate` and `dry-run` against the loopback DNS server."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.store import suppressions
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from tests.dns_server import DnsServer

from conftest import cli_env, run_cli

CONTACTS = (
    "Email,First Name\n"
    "ann@mx-ok.example,Ann\n"
    "\n"
    "ANN@MX-OK.example,Ann again\n"
    "bob@a-only.example,Bob\n"
    "carl@null-mx.example,Carl\n"
    "dana@nxdomain.example,Dana\n"
    "eve@no-records.example,Eve\n"
    "finn@silent.example,Finn\n"
    "gus@servfail.example,Gus\n"
    ",No email\n"
    "not an address,Bad\n"
    "info@mx-ok.example,Role\n"
)
EXPECTED = [
    ("ann@mx-ok.example", "valid", ""),
    ("ANN@MX-OK.example", "duplicate", "same address as row 1"),
    ("bob@a-only.example", "valid", "no MX, A record"),
    ("carl@null-mx.example", "null_mx", "null MX: accepts no mail"),
    ("dana@nxdomain.example", "no_domain", "domain does not exist"),
    ("eve@no-records.example", "no_mx", "no MX and no A/AAAA record"),
    ("finn@silent.example", "dns_error", "DNS timeout"),
    ("gus@servfail.example", "dns_error", "DNS server failure"),
    ("", "invalid_syntax", "no email"),
    ("not an address", "invalid_syntax", "An email address must have an @-sign."),
    ("info@mx-ok.example", "valid", ""),
]


def run_cli_against(tmp_path: Path, dns: DnsServer, *args: str) -> subprocess.CompletedProcess:
    """The CLI resolving through `dns` (the test zones) rather than the catch-all server."""
    env = cli_env(tmp_path, OUTREACH_DNS_NAMESERVERS=dns.nameserver, OUTREACH_DNS_TIMEOUT="0.5")
    return run_cli(tmp_path, *args, env=env)


def test_validate_writes_one_line_per_data_row_with_its_status(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify validate exits 0 and OUT.csv has every data row in order with status and reason."""
    source = tmp_path / "contacts.csv"
    source.write_text(CONTACTS, encoding="utf-8")
    out = tmp_path / "out.csv"
    done = run_cli_against(tmp_path, dns_server, "validate", str(source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "Email",
        "First Name",
        "email_normalized",
        "status",
        "reason",
        "mx_host",
        "suggestion",
        "flags",
    ]
    assert [(r["Email"], r["status"], r["reason"]) for r in rows] == EXPECTED
    assert rows[0]["mx_host"] == "mx1.mail.example"
    assert rows[-1]["flags"] == "role"
    assert "11 rows: valid=3 invalid_syntax=2 no_mx=1 null_mx=1 no_domain=1 dns_error=2" in (
        done.stdout
    )


def test_validate_unusable_input_exits_2_with_the_reason(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify a file without an email column exits 2 naming the columns, writing nothing."""
    source = tmp_path / "contacts.csv"
    source.write_text("name,phone\nAnn,123\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    done = run_cli_against(tmp_path, dns_server, "validate", str(source), "--out", str(out))
    assert done.returncode == 2
    assert "no email column" in done.stderr and "name, phone" in done.stderr
    assert not out.exists()


def test_dry_run_of_a_workflow_reports_dns_verdicts_and_suppressions(
    sqlite_workspace: Workspace, tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify dry-run WORKFLOW reports DNS verdicts and suppressed rows, and sends nothing."""
    parsed = parse_csv(
        b"email,name\nann@mx-ok.example,Ann\nbob@null-mx.example,Bob\ncarl@mx-ok.example,Carl\n",
        source="c.csv",
    )
    services.setup_workflow(
        sqlite_workspace,
        name="weekly",
        parsed=parsed,
        template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@mx-ok.example",
        from_name="Team",
        options=SendOptions(),
        actor="test",
    )
    with sqlite_workspace.db.begin() as conn:
        suppressions.add_suppression(conn, "carl@mx-ok.example", reason="manual", now=utcnow())
    out = tmp_path / "dry.csv"
    done = run_cli_against(tmp_path, dns_server, "dry-run", "weekly", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["valid", "null_mx", "suppressed"]
    assert not (tmp_path / "outbox").exists() or not any((tmp_path / "outbox").iterdir())
    assert services.recent_runs(sqlite_workspace) == []
    assert "unsubscribe warning: No unsubscribe is set" in done.stdout


def test_dry_run_of_a_workflow_prints_its_unsubscribe_warnings_and_renders_the_link(
    sqlite_workspace: Workspace, tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify dry-run of a workflow with an http base URL and a mailto nobody reads (no
    OUTREACH_UNSUBSCRIBE_IMAP_URL): one warning line each, and its rows, whose template uses
    `unsubscribe_url`, render (valid) as the run would render them."""
    parsed = parse_csv(b"email\nann@mx-ok.example\n", source="c.csv")
    services.setup_workflow(
        sqlite_workspace,
        name="linked",
        parsed=parsed,
        template=TemplateSource("Hi", None, "Stop: {{ unsubscribe_url }}"),
        engine_url=f"outbox://{tmp_path / 'outbox'}",
        from_email="team@mx-ok.example",
        from_name="Team",
        options=SendOptions(
            unsubscribe_base_url="http://mx-ok.example/unsub", unsubscribe_mailto="u@mx-ok.example"
        ),
        actor="test",
    )
    out = tmp_path / "dry.csv"
    done = run_cli_against(tmp_path, dns_server, "dry-run", "linked", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("unsubscribe ")]
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith(
        "unsubscribe warning: The unsubscribe base URL http://mx-ok.example/unsub is not https"
    )
    assert lines[1].startswith(
        "unsubscribe warning: Unsubscribe requests mailed to u@mx-ok.example will not be processed"
    )
    with out.open(encoding="utf-8", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["valid"]


def test_send_dry_run_of_a_file_lists_the_rows_a_send_would_skip(
    sqlite_workspace: Workspace, tmp_path: Path, dns_server: DnsServer
) -> None:
    """Verify send --dry-run of a file runs the same pre-flight as a workflow's: DNS verdicts,
    duplicates and a suppressed address are listed as rows that would not be sent, a domain
    whose DNS server failed as a row that would wait, and nothing is sent or saved."""
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "email,name\nann@mx-ok.example,Ann\nbob@null-mx.example,Bob\n"
        "carl@mx-ok.example,Carl\nann@mx-ok.example,Ann again\ndan@servfail.example,Dan\n",
        encoding="utf-8",
    )
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ name }}\n")
    (template / "body.txt").write_text("Hello {{ name }}\n")
    with sqlite_workspace.db.begin() as conn:
        suppressions.add_suppression(conn, "carl@mx-ok.example", reason="manual", now=utcnow())
    outbox = tmp_path / "outbox"
    done = run_cli_against(
        tmp_path,
        dns_server,
        *("send", str(contacts), "--template", str(template), "--engine", f"outbox://{outbox}"),
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("run: dry-run\n")
    assert "dry run: 5 rows, 1 would be sent, 1 would wait for DNS, 3 would not" in done.stdout
    rows = [line.split("\t")[:3] for line in done.stdout.splitlines() if line.startswith("row ")]
    assert rows == [
        ["row 2", "null_mx", "bob@null-mx.example"],
        ["row 3", "suppressed", "carl@mx-ok.example"],
        ["row 4", "duplicate", "ann@mx-ok.example"],
        ["row 5", "dns_error", "dan@servfail.example"],
    ]
    assert "dns_error: DNS server failure for servfail.example" in done.stdout
    assert not outbox.exists() or not any(outbox.iterdir())
    assert services.recent_runs(sqlite_workspace) == []
