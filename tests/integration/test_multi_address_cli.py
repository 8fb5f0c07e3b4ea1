"""`validate` and `send` (and `send --dry-run`) split cells holding several addresses as the
Audiences page does: `--multi-address first` (the default) keeps the first address, `each`
makes one row per address; the whole cell stays in a column beside it. Run as a subprocess on
a Google Contacts export with `:::`, `;` and `,` cells, DNS skipped."""

from __future__ import annotations

import csv
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from outreach_core.adapters.senders.outbox import message_files
from outreach_core.entrypoints.cli import main

from conftest import run_cli

HEADERS = [
    "First Name", "Last Name", "Labels", "E-mail 1 - Label", "E-mail 1 - Value",
    "Phone 1 - Value", "Organization Name",
]  # fmt: skip
PEOPLE = [
    ("Ada", "Lovelace", "ada@example.com ::: ada.home@example.org"),
    ("Grace", "Hopper", "grace@example.org"),
    ("Alan", "Turing", "alan@example.net; turing@example.net"),
    ("Edsger", "Dijkstra", "edsger@example.nl, ed@example.nl"),
    ("Barbara", "Liskov", ""),
    ("Donald", "Knuth", "GRACE@example.org ::: knuth@example.edu"),
    ("Ken", "Thompson", "not an address"),
]
ALL = "E-mail 1 - Value (all addresses)"
#: validate --multi-address first: (first name, address, whole cell, status, reason)
FIRST = [
    ("Ada", "ada@example.com", PEOPLE[0][2], "valid", ""),
    ("Grace", "grace@example.org", "grace@example.org", "valid", ""),
    ("Alan", "alan@example.net", PEOPLE[2][2], "valid", ""),
    ("Edsger", "edsger@example.nl", PEOPLE[3][2], "valid", ""),
    ("Barbara", "", "", "invalid_syntax", "no email"),
    ("Donald", "GRACE@example.org", PEOPLE[5][2], "duplicate", "same address as row 2"),
    ("Ken", "not an address", "not an address", "invalid_syntax", "An email address must have an @-sign."),
]  # fmt: skip
#: validate --multi-address each: (first name, address, status)
EACH = [
    ("Ada", "ada@example.com", "valid"),
    ("Ada", "ada.home@example.org", "valid"),
    ("Grace", "grace@example.org", "valid"),
    ("Alan", "alan@example.net", "valid"),
    ("Alan", "turing@example.net", "valid"),
    ("Edsger", "edsger@example.nl", "valid"),
    ("Edsger", "ed@example.nl", "valid"),
    ("Barbara", "", "invalid_syntax"),
    ("Donald", "GRACE@example.org", "duplicate"),
    ("Donald", "knuth@example.edu", "valid"),
    ("Ken", "not an address", "invalid_syntax"),
]


def google_export(tmp_path: Path) -> Path:
    """Google Contacts' CSV: BOM, CRLF, a label column before each value, a blank line."""
    path = tmp_path / "google.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADERS)
        for first, last, cell in PEOPLE:
            writer.writerow(
                [first, last, "* myContacts", "* Work", cell, "+1 555 0100", f"{last} Ltd"]
            )
        handle.write("\r\n")
    return path


def validate(tmp_path: Path, *mode: str) -> tuple[list[dict[str, str]], str]:
    out = tmp_path / "checked.csv"
    contacts = google_export(tmp_path)
    done = run_cli(tmp_path, "validate", str(contacts), "--out", str(out), "--skip-mx", *mode)
    assert done.returncode == 0, done.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), done.stderr


def test_validate_keeps_the_first_address_of_a_cell_by_default(tmp_path: Path) -> None:
    """Verify validate without the option checks the first address of each multi-address
    cell (`:::`, `;` and `,`), keeps the whole cell in a column beside it, says how many
    cells it split, and finds a first address that repeats an earlier row's."""
    rows, stderr = validate(tmp_path)
    assert list(rows[0])[: len(HEADERS) + 1] == [*HEADERS, ALL]
    got = [(r["First Name"], r["E-mail 1 - Value"], r[ALL], r["status"], r["reason"]) for r in rows]
    assert got == FIRST
    assert "4 cells of 'E-mail 1 - Value' hold several addresses: its first address kept" in (
        stderr
    )


def test_validate_each_makes_one_row_per_address(tmp_path: Path) -> None:
    """Verify `--multi-address each` checks every address of a cell on a row of its own, the
    other values repeated, and an address seen on an earlier row is a duplicate."""
    rows, stderr = validate(tmp_path, "--multi-address", "each")
    assert [(r["First Name"], r["E-mail 1 - Value"], r["status"]) for r in rows] == EACH
    assert {r["Organization Name"] for r in rows if r["First Name"] == "Alan"} == {"Turing Ltd"}
    assert "4 cells of 'E-mail 1 - Value' hold several addresses: one row each" in stderr


def test_send_splits_cells_in_the_dry_run_and_the_send(tmp_path: Path) -> None:
    """Verify `send --dry-run --multi-address each` counts one row per address, and a send
    with the default writes one message to each first address (the repeated Grace skipped)
    through the outbox engine, its template reading the row's other columns."""
    contacts = google_export(tmp_path)
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hello {{ first_name }}\n")
    (template / "body.txt").write_text("Hi.\nUnsubscribe: https://example.com/unsubscribe\n")
    outbox = tmp_path / "outbox"
    command = ["send", str(contacts), "--template", str(template), "--engine", f"outbox://{outbox}"]

    dry = run_cli(tmp_path, *command, "--skip-mx", "--dry-run", "--multi-address", "each")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 11 rows, 8 would be sent, 3 would not" in dry.stdout
    assert "row 9\tduplicate\tGRACE@example.org\tduplicate: same address as row 3" in dry.stdout
    assert not outbox.exists()

    sent = run_cli(tmp_path, *command, "--skip-mx", "--rate", "0")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "4 sent, 0 failed" in sent.stdout
    subjects = {
        path.name.split("-", 1)[1]: message_from_bytes(path.read_bytes(), policy=policy.default)[
            "Subject"
        ]
        for path in message_files(outbox)
    }
    assert subjects == {
        "ada@example.com.eml": "Hello Ada",
        "grace@example.org.eml": "Hello Grace",
        "alan@example.net.eml": "Hello Alan",
        "edsger@example.nl.eml": "Hello Edsger",
    }


def test_multi_address_option_is_documented_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Verify --help of validate and send names the option, its choices and default, and an
    unknown choice exits 2 naming the ones allowed (the CLI's entry function, in process:
    both stop at the command line, before any workspace is opened)."""
    for command in ("validate", "send"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--multi-address {first,each}" in text
        assert "keep its first address, or one row per address" in text
        assert "(default first)" in text
    with pytest.raises(SystemExit) as done:
        main(["validate", str(tmp_path / "c.csv"), "--out", "o.csv", "--multi-address", "all"])
    assert done.value.code == 2
    # newer Pythons quote the choices, older ones do not
    assert re.search(
        r"--multi-address: invalid choice: 'all' \(choose from '?first'?, '?each'?\)",
        capsys.readouterr().err,
    )
