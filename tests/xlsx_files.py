"""XLSX workbooks written part by part with zipfile: quick to make at any size, and free to
hold what no spreadsheet program would write (a 100 MB cell, a million rows, lying sizes)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
BOOK_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"

CONTENT_TYPES = (
    f'<?xml version="1.0"?><Types xmlns="{CT}">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{BOOK_TYPE}"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{SHEET_TYPE}"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{STRINGS_TYPE}"/></Types>'
)
ROOT_RELS = (
    f'<?xml version="1.0"?><Relationships xmlns="{PKG}"><Relationship Id="rId1" '
    f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    f'<?xml version="1.0"?><workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>'
    '<sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
BOOK_RELS = (
    f'<?xml version="1.0"?><Relationships xmlns="{PKG}">'
    f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)


def inline_row(number: int, values: Iterable[str]) -> str:
    """One `<row>` of inline strings, columns A, B, ..."""
    cells = "".join(
        f'<c r="{chr(65 + i)}{number}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{number}">{cells}</row>'


def workbook(
    sheet_chunks: Iterable[str],
    *,
    strings: Iterable[str] = (),
    level: int = 6,
    doctype: str = "",
    first_string: str = "",
) -> bytes:
    """An XLSX file: one sheet made of `sheet_chunks` (the `<row>` elements, streamed into the
    archive as they come) and a shared-strings part made of `strings` chunks (the `<si>`s),
    after an optional `doctype` and `first_string`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", BOOK_RELS)
        with archive.open("xl/sharedStrings.xml", "w") as part:
            part.write(f'<?xml version="1.0"?>{doctype}<sst xmlns="{MAIN}">'.encode())
            part.write(first_string.encode())
            for chunk in strings:
                part.write(chunk.encode())
            part.write(b"</sst>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            part.write(f'<?xml version="1.0"?><worksheet xmlns="{MAIN}"><sheetData>'.encode())
            for chunk in sheet_chunks:
                part.write(chunk.encode())
            part.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


def huge_cell_xlsx(size: int = 100_000_000) -> bytes:
    """A header row and one contact whose name is the first shared string: `size` letters
    (deflate packs them a thousand to one: 100 MB fit in about 100 KB)."""

    def letters() -> Iterator[str]:
        yield "<si><t>"
        left = size
        while left:
            step = min(left, 1 << 20)
            yield "A" * step
            left -= step
        yield "</t></si>"

    rows = [
        inline_row(1, ["email", "name"]),
        '<row r="2"><c r="A2" t="inlineStr"><is><t>ann@example.com</t></is></c>'
        '<c r="B2" t="s"><v>0</v></c></row>',
    ]
    return workbook(rows, strings=letters(), level=9)


def many_rows_xlsx(count: int) -> bytes:
    """A header row and `count` contacts, one distinct address each, as inline strings."""

    def rows() -> Iterator[str]:
        yield inline_row(1, ["email", "name"])
        batch: list[str] = []
        for n in range(2, count + 2):
            batch.append(
                f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>u{n}@example.com</t></is></c></row>'
            )
            if len(batch) == 10_000:
                yield "".join(batch)
                batch = []
        yield "".join(batch)

    return workbook(rows(), level=1)


def declare_size(data: bytes, part: str, size: int) -> bytes:
    """The archive with `part` declared (central directory and local header) as `size` bytes
    uncompressed, whatever its data inflates to."""
    raw = bytearray(data)
    name = part.encode()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(part)
    # the local header: the uncompressed size is at offset 22
    assert raw[info.header_offset + 30 : info.header_offset + 30 + len(name)] == name
    struct.pack_into("<I", raw, info.header_offset + 22, size)
    # the central directory entry: signature, then the size at offset 24, the name at 46
    at = raw.find(b"PK\x01\x02")
    while raw[at + 46 : at + 46 + len(name)] != name:
        at = raw.find(b"PK\x01\x02", at + 4)
        assert at != -1, part
    struct.pack_into("<I", raw, at + 24, size)
    return bytes(raw)
