"""Contacts files: encodings, delimiters, XLSX, and every row accounted for."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from outreach_core.adapters.contact_files import parse_csv, parse_file, sort_rows
from outreach_core.errors import InputError

MESSY = (
    "\ufeffE-Mail;First Name;Note\r\n"
    'ann@example.com;Ann;"likes ; semicolons, and commas"\r\n'
    "\r\n"
    'ANN@Example.COM;Ann again;"two\r\nlines"\r\n'
    "josé@bücher.example;José;idn\r\n"
    "JOSÉ@xn--bcher-kva.example;José again;idn ascii\r\n"
    ";No Email;missing\r\n"
    "   ;Spaces;missing too\r\n"
    "not-an-address;Bad;syntax\r\n"
    "\r\n"
    "bob@example.org;Bob;\r\n"
)


def test_messy_csv_accounts_for_every_row_with_line_numbers() -> None:
    """Verify BOM, semicolons, quoted separators and line breaks, mixed-case and IDN duplicates,
    blank lines and missing emails: imported + rejected + duplicate = rows, rejects carry lines."""
    parsed = parse_csv(MESSY.encode("utf-8"), source="messy.csv")
    assert parsed.delimiter == ";" and parsed.encoding == "utf-8" and not parsed.notes
    assert parsed.headers == ["E-Mail", "First Name", "Note"]
    assert parsed.columns == ["e_mail", "first_name", "note"]
    assert parsed.email_column == "e_mail"
    assert len(parsed.rows) == 8  # blank lines are not rows
    assert parsed.rows[0]["note"] == "likes ; semicolons, and commas"
    assert parsed.rows[1]["note"] == "two\r\nlines"

    report = sort_rows(parsed)
    assert len(report.imported) + len(report.rejected) + len(report.duplicates) == 8
    assert [r["first_name"] for r in report.imported] == ["Ann", "José", "Bob"]
    assert [(d.row, d.line, d.first_row) for d in report.duplicates] == [(2, 4, 1), (4, 7, 3)]
    assert [(r.row, r.line, r.email, r.reason) for r in report.rejected] == [
        (5, 8, "", "no email"),
        (6, 9, "", "no email"),
        (7, 10, "not-an-address", "An email address must have an @-sign."),
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(delimiter: str) -> None:
    """Verify comma, semicolon, tab and pipe files parse into the same rows."""
    text = delimiter.join(["email", "name"]) + "\n" + delimiter.join(["a@example.com", "A"])
    parsed = parse_csv(text.encode(), source="x.csv")
    assert parsed.delimiter == delimiter
    assert parsed.rows == [{"email": "a@example.com", "name": "A"}]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_read(encoding: str) -> None:
    """Verify UTF-16 files (detected by their BOM) keep their accents."""
    text = "email,name\nzoe@example.com,Zoë\n"
    data = text.encode(encoding)
    if encoding != "utf-16":
        data = ("\ufeff" + text).encode(encoding)
    parsed = parse_csv(data, source="x.csv")
    assert parsed.encoding == "utf-16"
    assert parsed.rows == [{"email": "zoe@example.com", "name": "Zoë"}]


def test_latin1_fallback_says_so() -> None:
    """Verify a non-UTF-8 file is read as Latin-1 with a note saying so."""
    parsed = parse_csv("email,name\nzoe@example.com,Zoë\n".encode("latin-1"), source="x.csv")
    assert parsed.encoding == "latin-1"
    assert parsed.rows[0]["name"] == "Zoë"
    assert "Latin-1" in parsed.notes[0]


def test_email_column_can_be_chosen_and_unknown_one_is_named() -> None:
    """Verify a chosen column wins over detection; a missing one is an error listing columns."""
    data = b"Contact,Other Mail\nx@example.com,y@example.com\n"
    with pytest.raises(InputError, match=r"no email column.*Contact, Other Mail"):
        parse_csv(data, source="x.csv")
    assert parse_csv(data, source="x.csv", email_column="Other Mail").email_column == "other_mail"
    with pytest.raises(InputError, match="no column 'Nope'"):
        parse_csv(data, source="x.csv", email_column="Nope")


def test_xlsx_first_or_chosen_sheet() -> None:
    """Verify XLSX: first sheet by default, a named sheet on request, sheet rows as lines."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        pd.DataFrame({"Name": ["A"], "Email": ["a@example.com"]}).to_excel(
            writer, sheet_name="First", index=False
        )
        pd.DataFrame({"Mail": ["b@example.com", "", "c@example.com"]}).to_excel(
            writer, sheet_name="Second", index=False
        )
    data = buffer.getvalue()
    first = parse_file(data, source="book.xlsx")
    assert (first.email_column, first.rows) == ("email", [{"name": "A", "email": "a@example.com"}])
    second = parse_file(data, source="book.xlsx", sheet="Second")
    assert second.email_column == "mail" and second.lines == [2, 4]
    with pytest.raises(InputError, match="no sheet 'Third'; sheets are: First, Second"):
        parse_file(data, source="book.xlsx", sheet="Third")


def test_too_many_rows_is_refused_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a file above the row limit is an error naming the limit, no partial result."""
    monkeypatch.setattr("outreach_core.adapters.contact_files.MAX_ROWS", 3)
    data = b"email\n" + b"".join(b"u%d@example.com\n" % n for n in range(4))
    with pytest.raises(InputError, match=r"more than 3 rows.*nothing was imported"):
        parse_csv(data, source="big.csv")


def test_too_big_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a file above the size limit is refused before parsing."""
    monkeypatch.setattr("outreach_core.adapters.contact_files.MAX_BYTES", 10)
    with pytest.raises(InputError, match="above the limit"):
        parse_csv(b"email\nann@example.com\n", source="big.csv")
