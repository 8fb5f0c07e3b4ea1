"""`send --on-render-error skip|abort` and the dry run, with a row whose `company` is empty.

The CLI runs as a subprocess against a real SMTP server on 127.0.0.1; the test counts what
arrived there.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from smtp_server import SmtpTestServer

ROWS = 50
EMPTY_ROW = 37


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """50 contacts, row 37 without a company, and a template that needs `company`."""
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "company"])
        for n in range(1, ROWS + 1):
            company = "" if n == EMPTY_ROW else f"Company {n}"
            writer.writerow([f"person{n}@example.com", f"Person {n}", company])
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("News for {{ company }}\n")
    (template / "body.txt").write_text(
        "Hi {{ first_name }} ({{ title | default('friend') }}) at {{ company }}.\n"
        "Unsubscribe: https://example.com/unsubscribe\n"
    )
    return contacts, template


def send(
    tmp_path: Path, files: tuple[Path, Path], url: str, *extra: str
) -> subprocess.CompletedProcess:
    contacts, template = files
    command = ["send", str(contacts), "--template", str(template), "--engine", url]
    return run_cli(tmp_path, *command, "--rate", "0", "--skip-mx", *extra)


def row_lines(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines() if line.startswith("row ")]


def test_dry_run_lists_the_row_with_an_empty_company_as_render_error(
    tmp_path: Path, files: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify the dry run renders every row and lists row 37 alone, as render_error naming
    `company`; an empty cell counts as missing, a `| default()` variable does not."""
    result = send(tmp_path, files, smtp_server.url, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert f"dry run: {ROWS} rows, {ROWS - 1} would be sent, 1 would not" in result.stdout
    assert "variables: company, first_name, title" in result.stdout
    (line,) = row_lines(result.stdout)
    assert line[:3] == [f"row {EMPTY_ROW}", "render_error", f"person{EMPTY_ROW}@example.com"]
    assert "'company' is undefined" in line[3]
    assert smtp_server.handler.received == []

    aborting = send(tmp_path, files, smtp_server.url, "--dry-run", "--on-render-error", "abort")

    assert aborting.returncode == 2
    assert "on-render-error abort: a send would not start" in aborting.stdout
    assert row_lines(aborting.stdout) == row_lines(result.stdout)


def test_skip_sends_every_other_row_and_records_the_row_as_render_error(
    tmp_path: Path, files: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify on-render-error skip (the default): 49 messages arrive, row 37's address gets
    none, and the ledger records it skipped with render_error naming `company`."""
    result = send(tmp_path, files, smtp_server.url)

    assert result.returncode == 0, result.stderr
    # warned (on stderr: stdout starts with the run id), and sent all the same
    assert "unsubscribe warning: No unsubscribe is set" in result.stderr
    assert result.stdout.startswith("run: ")
    received = smtp_server.handler.by_recipient()
    assert len(received) == ROWS - 1
    assert f"person{EMPTY_ROW}@example.com" not in received
    out = tmp_path / "run.csv"
    export = run_cli(tmp_path, "export", "1", "--out", str(out))
    assert export.returncode == 0, export.stderr
    with out.open(newline="") as handle:
        skipped = [r for r in csv.DictReader(handle) if r["status"] == "skipped"]
    assert [(r["row_number"], r["email"]) for r in skipped] == [
        (str(EMPTY_ROW), f"person{EMPTY_ROW}@example.com")
    ]
    assert skipped[0]["reason"].startswith("render_error: ")
    assert "'company' is undefined" in skipped[0]["reason"]


def test_abort_sends_nothing_exits_2_and_names_the_row(
    tmp_path: Path, files: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify on-render-error abort: nothing arrives, exit code 2, the run is FAILED and the
    message names row 37 and `company`."""
    result = send(tmp_path, files, smtp_server.url, "--on-render-error", "abort")

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert smtp_server.handler.received == []
    assert "FAILED" in result.stdout
    assert f"row {EMPTY_ROW}: render_error" in result.stderr
    assert "'company' is undefined" in result.stderr
    assert "1 rows do not render, nothing was sent" in result.stderr


def test_on_render_error_refuses_an_unknown_policy(
    tmp_path: Path, files: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify the parser lists the valid values and exits 2 for anything else."""
    result = send(tmp_path, files, smtp_server.url, "--on-render-error", "ignore")

    assert result.returncode == 2
    assert "invalid choice: 'ignore' (choose from 'skip', 'abort')" in result.stderr


def test_unsubscribe_url_option_is_checked_and_fills_the_builtin(
    tmp_path: Path, files: tuple[Path, Path], smtp_server: SmtpTestServer
) -> None:
    """Verify --unsubscribe-url refuses a non-http URL (exit 2), and with a good one a
    template reading `{{ unsubscribe_url }}` renders for every row but 37."""
    template = files[1]
    (template / "body.txt").write_text("Hi {{ company }}: {{ unsubscribe_url }}\n")

    bad = send(tmp_path, files, smtp_server.url, "--dry-run", "--unsubscribe-url", "ftp://x")
    without = send(tmp_path, files, smtp_server.url, "--dry-run")
    good = send(
        tmp_path, files, smtp_server.url, "--dry-run", "--unsubscribe-url", "https://e.com/u"
    )

    assert bad.returncode == 2
    assert "--unsubscribe-url: unsubscribe URL 'ftp://x'" in bad.stderr
    assert len(row_lines(without.stdout)) == ROWS
    assert "'unsubscribe_url' is undefined" in row_lines(without.stdout)[0][3]
    assert [line[0] for line in row_lines(good.stdout)] == [f"row {EMPTY_ROW}"]
    # the dry run's unsubscribe warnings: none once the https URL and the link are there
    assert "unsubscribe warning: No unsubscribe is set" in without.stdout
    assert "unsubscribe warning" not in good.stdout and "unsubscribe info" not in good.stdout
