"""Control characters in contact values: removed from values with a note, refused in an
address; the import report and the freezing plan say so; a run's failure reason leaks nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from xlsx_files import inline_row, workbook

from outreach_core.adapters.contact_files import (
    MAX_CLEANED_NOTES,
    parse_csv,
    parse_xlsx,
    sort_rows,
)
from outreach_core.domain.control_chars import (
    clean_row,
    email_problem,
    has_controls,
    printable,
    removed_note,
    strip_controls,
)
from outreach_core.domain.planning import SenderIdentity, plan_deliveries
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.validation import check_syntax
from outreach_core.services.sending.failures import MAX_REASON, failure_reason

CONTROLS = [
    chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)]
]
_ANY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("ch", CONTROLS)
def test_every_control_character_is_removed_from_a_value(ch: str) -> None:
    """Verify each C0, DEL and C1 character but tab, CR and LF is removed and counted."""
    assert strip_controls(f"A{ch}nn{ch}") == ("Ann", 2)
    assert has_controls(ch) and printable(ch) == ""


def test_tab_and_line_breaks_are_kept_in_values() -> None:
    """Verify a multi-line value (tab, CR, LF) and other Unicode are left as they are."""
    text = "12 Main St\r\nFloor\t3 \u2028 caf\u00e9 \u200b \ufeff"
    assert strip_controls(text) == (text, 0)
    assert not has_controls(text)


@given(st.text())
def test_stripping_keeps_every_other_character_in_order(text: str) -> None:
    """Verify for any text: no control character is left, the rest is kept in order, and the
    count is what went."""
    cleaned, removed = strip_controls(text)
    assert not _ANY_CONTROL.search(cleaned)
    assert cleaned == "".join(ch for ch in text if ch not in CONTROLS)
    assert removed == len(text) - len(cleaned)


def test_the_note_names_row_column_and_count() -> None:
    """Verify the note's words: row, column header, how many (singular and plural)."""
    assert removed_note(7, "name", 2) == 'row 7, column "name": 2 control characters removed'
    assert removed_note(1, "First\x00 name", 1) == (
        'row 1, column "First name": 1 control character removed'
    )
    assert removed_note(0, "city", 1) == 'header, column "city": 1 control character removed'


def test_clean_row_leaves_the_email_cell_and_non_text_values() -> None:
    """Verify values lose their control characters, the email cell keeps them (its row is
    refused instead), and numbers and None from a SQL source are left alone."""
    row = {"email": "bob\x00@example.com", "name": "B\x00o\x07b", "n": 3, "none": None}
    cleaned = clean_row(row, email_column="email")
    assert cleaned.values == {"email": "bob\x00@example.com", "name": "Bob", "n": 3, "none": None}
    assert cleaned.removed == {"name": 2}
    assert row["name"] == "B\x00o\x07b"  # the input is not changed


@pytest.mark.parametrize(
    ("raw", "codes"),
    [
        ("bob\x00@example.com", "U+0000"),
        ("bob@exa\x01mple.com", "U+0001"),
        ("bob@example.com\x1f", "U+001F"),  # str.strip would have trimmed it silently
        ("\x85bob@example.com", "U+0085"),
        ("b\x00o\x7fb@example.com", "U+0000, U+007F"),
    ],
)
def test_an_address_with_control_characters_is_refused_with_the_reason(
    raw: str, codes: str
) -> None:
    """Verify the address check refuses the row naming how many and which characters."""
    checked = check_syntax(raw)
    assert not checked.ok
    assert checked.error == email_problem(raw)
    assert f"({codes})" in (checked.error or "")
    assert "correct the email cell" in (checked.error or "")


def test_an_address_with_tab_or_line_breaks_around_it_is_still_trimmed() -> None:
    """Verify the old trimming stays: whitespace around an address is not a control problem."""
    assert email_problem(" ann@example.com\r\n\t") is None
    assert check_syntax(" ann@example.com\r\n\t").address == "ann@example.com"


CSV = (
    b"email,na\x00me,city\n"
    b"ann@example.com,A\x00nn,Paris\n"
    b"bob\x00@example.com,Bob,Rome\n"
    b'carl@example.com,C\x01arl\x7f,"Line 1\nLine\t2"\n'
    b"dee@example.com,Dee,Oslo\n"
)


def test_import_removes_control_characters_and_rejects_a_broken_address() -> None:
    """Verify the import report: a note per cleaned cell (header included), the row whose
    email cell holds a NUL rejected with the reason and shown without it, the rest imported
    clean with tab and line breaks kept; every row accounted for."""
    parsed = parse_csv(CSV, source="c.csv")
    assert parsed.columns == ["email", "name", "city"]
    assert parsed.notes == [
        'header, column "name": 1 control character removed',
        'row 1, column "name": 1 control character removed',
        'row 3, column "name": 2 control characters removed',
    ]
    report = sort_rows(parsed)
    [rejected] = report.rejected
    assert (rejected.row, rejected.line, rejected.email) == (2, 3, "bob@example.com")
    assert (
        rejected.reason == "the address holds 1 control character (U+0000); correct the email cell"
    )
    assert report.imported == [
        {"email": "ann@example.com", "name": "Ann", "city": "Paris"},
        {"email": "carl@example.com", "name": "Carl", "city": "Line 1\nLine\t2"},
        {"email": "dee@example.com", "name": "Dee", "city": "Oslo"},
    ]
    assert len(report.imported) + len(report.rejected) + len(report.duplicates) == report.total
    assert not any(has_controls(v) for row in report.audience_file().rows for v in row.values())


def test_a_file_without_control_characters_gets_no_note() -> None:
    """Verify an ordinary file is imported as before, with no note."""
    parsed = parse_csv(b"email,name\nann@example.com,Ann\n", source="c.csv")
    assert parsed.notes == [] and parsed.rows == [{"email": "ann@example.com", "name": "Ann"}]


def test_many_cleaned_cells_are_listed_up_to_a_limit_then_counted() -> None:
    """Verify a file full of control characters gets a bounded list of notes and a count."""
    rows = b"".join(b"p%d@example.com,x\x00,y\x00\n" % n for n in range(100))
    parsed = parse_csv(b"email,a,b\n" + rows, source="c.csv")
    assert len(parsed.notes) == MAX_CLEANED_NOTES + 1
    assert (
        parsed.notes[-1]
        == f"control characters were also removed from {200 - MAX_CLEANED_NOTES} more cells"
    )
    assert all(row["a"] == "x" and row["b"] == "y" for row in parsed.rows)


def test_xlsx_cells_are_cleaned_the_same_way() -> None:
    """Verify a workbook's C1 control characters (XML allows them) are removed with a note."""
    data = workbook(
        [inline_row(1, ["email", "name"]), inline_row(2, ["ann@example.com", "A\x85nn\x9f"])]
    )
    parsed = parse_xlsx(data, source="c.xlsx")
    assert parsed.rows == [{"email": "ann@example.com", "name": "Ann"}]
    assert parsed.notes == ['row 1, column "name": 2 control characters removed']


def test_the_plan_stores_a_refused_address_without_its_control_characters() -> None:
    """Verify a row whose address holds a NUL is skipped as invalid with the reason, and the
    address it records holds no NUL (PostgreSQL refuses NUL in text: the freeze would fail)."""
    plan = list(
        plan_deliveries(
            [(1, {"email": "bob\x00@example.com"}), (2, {"email": "ann@example.com"})],
            email_column="email",
            template=CompiledTemplate(TemplateSource("Hi", None, "Hello")),
            sender=SenderIdentity("team@example.com", "Team"),
            run_date=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert [(p.email, p.status) for p in plan] == [
        ("bob@example.com", DeliveryStatus.SKIPPED),
        ("ann@example.com", DeliveryStatus.PENDING),
    ]
    assert plan[0].reason == (
        "invalid_syntax: the address holds 1 control character (U+0000); correct the email cell"
    )


def _raised(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_a_database_error_reason_is_the_drivers_first_line_without_sql_or_values() -> None:
    """Verify a wrapped driver error gives its first line and class, not the statement or the
    parameters SQLAlchemy's message quotes (contact data), nor a NUL."""

    class DataError(Exception):
        pass

    wrapped = sa.exc.DataError(
        "INSERT INTO deliveries ...",
        {"email": "secret-row@example.com"},
        DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes\x00\nDETAIL: more"),
    )
    reason = failure_reason(wrapped, stage="freezing the audience")
    assert reason == (
        "the database refused the run's data while freezing the audience: PostgreSQL text "
        "fields cannot contain NUL (0x00) bytes (DataError)"
    )


def test_an_unexpected_error_reason_masks_urls_and_stays_one_short_line() -> None:
    """Verify any other error gives its type, where it was raised and its first line with the
    password of a URL masked; control characters and length are bounded."""
    exc = _raised(ValueError("cannot open smtp://user:hunter2@mail.example.com:587\x00\nmore"))
    reason = failure_reason(exc, stage="sending")
    assert reason.startswith("unexpected error while sending: ValueError at test_control_chars.py:")
    assert "hunter2" not in reason and "mail.example.com" in reason
    assert "\x00" not in reason and "more" not in reason
    long = failure_reason(_raised(RuntimeError("x" * 5000)), stage="sending")
    assert len(long) == MAX_REASON and long.endswith("…")
    assert failure_reason(_raised(KeyError()), stage="sending").endswith(
        "KeyError at " + (f"test_control_chars.py:{_raised.__code__.co_firstlineno + 2}")
    )
