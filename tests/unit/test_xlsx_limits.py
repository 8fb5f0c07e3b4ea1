"""XLSX files built to exhaust the reader: refused early, with a clear message, in bounded
memory; ordinary workbooks still read as before."""

from __future__ import annotations

import datetime as dt
import io
import time
import tracemalloc

import pytest
from openpyxl import Workbook

from outreach_core.adapters import contact_xlsx
from outreach_core.adapters.contact_files import MAX_ROWS, parse_file
from outreach_core.errors import InputError
from tests.xlsx_files import declare_size, huge_cell_xlsx, inline_row, many_rows_xlsx, workbook

MB = 1024 * 1024


def refused_within(data: bytes, *, peak_mb: float) -> tuple[str, float]:
    """The refusal message of parse_file(data) and the seconds it took, the traced memory
    peak asserted below `peak_mb`."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InputError) as refused:
            parse_file(data, source="contacts.xlsx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < peak_mb * MB, f"peak {peak / MB:.0f} MB"
    return str(refused.value), time.monotonic() - started


def test_a_99_kb_file_that_expands_to_100_mb_is_refused_before_inflating() -> None:
    """Verify a 99 KB XLSX holding one 100 MB shared string is refused from the archive's
    directory: in well under a second, under 50 MB of memory, the part and ratio named."""
    data = huge_cell_xlsx(100_000_000)
    assert len(data) < 100 * 1024
    message, seconds = refused_within(data, peak_mb=50)
    assert "xl/sharedStrings.xml expands 1,0" in message and "times" in message
    assert "nothing was imported" in message
    assert seconds < 5


def test_a_part_that_lies_about_its_size_is_refused_unread() -> None:
    """Verify the same bomb declaring 1,000 bytes in its directory is not inflated past them:
    the bad CRC refuses it, in bounded memory."""
    data = declare_size(huge_cell_xlsx(100_000_000), "xl/sharedStrings.xml", 1_000)
    message, _ = refused_within(data, peak_mb=50)
    assert message.startswith("contacts.xlsx: not a readable XLSX file") and "CRC" in message


def test_a_part_too_large_even_when_it_packs_badly_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verify the per-part and total expanded-size limits, each named in its message."""
    data = many_rows_xlsx(20_000)
    monkeypatch.setattr(contact_xlsx, "MAX_PART_BYTES", MB)
    with pytest.raises(
        InputError, match=r"part xl/worksheets/sheet1.xml expands to 2 MB, above the limit of 1 MB"
    ):
        parse_file(data, source="c.xlsx")
    monkeypatch.setattr(contact_xlsx, "MAX_PART_BYTES", 256 * MB)
    monkeypatch.setattr(contact_xlsx, "MAX_EXPANDED_BYTES", MB)
    with pytest.raises(InputError, match=r"the XLSX file expands to 2 MB, above the limit of 1 MB"):
        parse_file(data, source="c.xlsx")


def test_a_huge_cell_under_the_ratio_is_refused_naming_row_and_column() -> None:
    """Verify a cell above 10,000 characters (one that packs like text) is refused with its
    row and column named."""
    long_text = "".join(f"{n:06d}" for n in range(3_000))  # 18,000 characters
    data = workbook([inline_row(1, ["email", "name"]), inline_row(2, ["a@example.com", long_text])])
    with pytest.raises(InputError, match=r"row 2, column B: a cell of 18,000 characters.*10,000"):
        parse_file(data, source="c.xlsx")


def test_a_million_and_a_tenth_rows_are_refused_at_the_cap_in_bounded_memory() -> None:
    """Verify a 1.1-million-row sheet (9 MB, 99 MB of XML) is refused with the cap named,
    before any row is parsed: memory stays under 50 MB (parsing it whole took 540 MB)."""
    data = many_rows_xlsx(1_100_000)
    message, _ = refused_within(data, peak_mb=50)
    assert (
        message == "contacts.xlsx: more than 1,000,000 rows; split the file (nothing was imported)"
    )
    assert MAX_ROWS == 1_000_000


def test_the_row_cap_stops_the_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verify a sheet above the row cap (but within a spreadsheet's rows) is refused once the
    cap is passed: the rows after it are never parsed."""
    monkeypatch.setattr("outreach_core.adapters.contact_files.MAX_ROWS", 1_000)
    parsed_cells: list[object] = []
    real = contact_xlsx.cell_text

    def counting(value: object) -> str:
        parsed_cells.append(value)
        return real(value)

    monkeypatch.setattr(contact_xlsx, "cell_text", counting)
    with pytest.raises(InputError, match=r"more than 1,000 rows"):
        parse_file(many_rows_xlsx(50_000), source="c.xlsx")
    assert len(parsed_cells) <= 1_002 * 2  # the header and 1,001 rows, not 50,000


def test_a_row_numbered_past_the_last_row_is_refused_quickly() -> None:
    """Verify `<row r="999999999">` (openpyxl fills the gap with empty rows) is refused at the
    last row a spreadsheet has, not after a billion empty rows."""
    data = workbook([inline_row(1, ["email"]), inline_row(999_999_999, ["a@example.com"])])
    started = time.monotonic()
    with pytest.raises(InputError, match=r"row numbered past 1,048,576"):
        parse_file(data, source="c.xlsx")
    assert time.monotonic() - started < 30


def test_a_row_reaching_past_the_column_limit_is_refused() -> None:
    """Verify a cell at column XFD (16,384 columns in every row) is refused on its row."""
    far = '<row r="2"><c r="A2" t="inlineStr"><is><t>a@x.org</t></is></c><c r="XFD2"/></row>'
    data = workbook([inline_row(1, ["email"]), far])
    with pytest.raises(InputError, match=r"row 2: reaches column XFD, more than 1,000 columns"):
        parse_file(data, source="c.xlsx")


def test_an_ordinary_workbook_reads_as_before() -> None:
    """Verify numbers (whole ones without `.0`), dates, booleans, blank rows and short rows
    come out as the text they showed before, and sheet rows as lines."""
    book = Workbook()
    sheet = book.active
    sheet.title = "People"
    sheet.append(["Email", "Age", "Joined", "Score", "VIP", None])
    sheet.append(["ann@example.com", 41, dt.datetime(2024, 5, 1), 2.5, True])
    sheet.append([])
    sheet.append(["  bob@example.com ", 30.0])
    buffer = io.BytesIO()
    book.save(buffer)
    parsed = parse_file(buffer.getvalue(), source="people.xlsx")
    assert parsed.headers == ["Email", "Age", "Joined", "Score", "VIP"]
    assert parsed.rows == [
        {"email": "ann@example.com", "age": "41", "joined": "2024-05-01 00:00:00",
         "score": "2.5", "vip": "True"},
        {"email": "bob@example.com", "age": "30", "joined": "", "score": "", "vip": ""},
    ]  # fmt: skip
    assert parsed.lines == [2, 4] and parsed.encoding == "xlsx"


def test_entity_expansion_in_the_shared_strings_is_refused() -> None:
    """Verify a billion-laughs shared string (entities of entities, 10^9 letters) is refused
    by the XML parser's amplification limit with a clear message, in bounded memory."""
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    data = workbook(
        [
            inline_row(1, ["email", "name"]),
            '<row r="2"><c r="A2" t="inlineStr"><is><t>a@x.org</t></is></c>'
            '<c r="B2" t="s"><v>0</v></c></row>',
        ],
        strings=[],
        doctype=f"<!DOCTYPE sst [{laughs}]>",
        first_string="<si><t>&i;</t></si>",
    )
    message, _ = refused_within(data, peak_mb=100)
    assert message.startswith("contacts.xlsx: not a readable XLSX file") and "amplif" in message


def test_a_csv_header_wider_than_the_column_limit_is_refused() -> None:
    """Verify a CSV header of 5,000 columns (each short row would be padded to it) is refused
    with its line named, as an XLSX row reaching that far is."""
    data = ("email," + ",".join(f"c{n}" for n in range(5_000)) + "\na@example.com\n").encode()
    with pytest.raises(InputError, match=r"wide.csv, line 1: 5,001 columns, more than 1,000"):
        parse_file(data, source="wide.csv")
