"""Contacts files imported in chunks: bounded memory, the row cap applied while reading, one
transaction, duplicates found across chunks, and the `audience import` command."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from outreach_core.adapters.contact_stream import ContactStream
from outreach_core.adapters.first_rows_on_disk import FirstRowsOnDisk
from outreach_core.adapters.seen_addresses import SeenAddresses
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import audiences as audience_store
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.address_cells import RowStatus, SplitMode
from outreach_core.domain.planning import InMemoryFirstRows
from outreach_core.errors import InputError
from outreach_core.services import audience_imports, audiences, file_sends, preflight
from outreach_core.services.audience_imports import FileOptions
from outreach_core.services.file_validation import FileCheck, validate_to_csv
from tests.xlsx_files import inline_row, workbook

from conftest import REPO, run_cli

PROBE = REPO / "tests" / "import_memory_probe.py"
#: peak memory growth allowed for an import; reading the file whole takes 2-3 times more
GROWTH_BOUND_MB = 12


def _csv_file(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("Email,First name,Last name,Company\n")
        for n in range(rows):
            out.write(f"person{n}@example{n % 50}.com,First{n},Last{n},Company {n % 1000}\n")
    return path


def _xlsx_file(path: Path, rows: int) -> Path:
    header = ["email", *(f"field {i}" for i in range(7))]

    def chunks() -> object:
        yield inline_row(1, header)
        for n in range(2, rows + 2):
            yield inline_row(n, [f"u{n}@example.com", *(f"value {n} {i}" for i in range(7))])

    path.write_bytes(workbook(chunks(), level=1))  # type: ignore[arg-type]
    return path


def _growth_mb(tmp_path: Path, file: Path, mode: str = "stream") -> float:
    (tmp_path / "data").mkdir(mode=0o700, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(PROBE), str(tmp_path / "data"), str(file), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    words = dict(word.split("=") for word in done.stdout.split())
    assert int(words["rows"]) > 0
    return float(words["growth_mb"])


@pytest.mark.parametrize(
    ("make", "rows"), [(_csv_file, 30_000), (_xlsx_file, 5_000)], ids=["csv", "xlsx"]
)
def test_import_memory_does_not_grow_with_the_file(tmp_path: Path, make: object, rows: int) -> None:
    """Verify an import's peak memory stays under a bound that reading the file whole passes
    (30,000 CSV rows whole: about 25 MB; 5,000 eight-column XLSX rows whole: about 26 MB)."""
    name = "contacts.csv" if make is _csv_file else "contacts.xlsx"
    file = make(tmp_path / name, rows)  # type: ignore[operator]
    assert _growth_mb(tmp_path, file) < GROWTH_BOUND_MB


def test_validate_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Verify `validate`'s two passes stay under a bound that the file read whole passes
    (30,000 rows whole: about 43 MB)."""
    file = _csv_file(tmp_path / "contacts.csv", 30_000)
    assert _growth_mb(tmp_path, file, "validate") < 20


def test_validate_in_chunks_writes_what_the_whole_file_check_writes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the streamed `validate` (chunks of 3 rows, duplicates across them, cells holding
    several addresses split one row each) writes the CSV the whole-file check writes."""
    lines = ["Email,Name", "Ann@Example.com,Ann", "bad,Bad", "b@x.org ; c@x.org,Both"]
    lines += [f"u{n}@example.com,U{n}" for n in range(5)]
    lines += ["ann@example.com,Again", ",None", "c@x.org,C again", "info@gmial.com,Role"]
    source = tmp_path / "contacts.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    check = FileCheck(source, split=SplitMode.EACH, skip_mx=True, chunk_rows=3)
    summary = validate_to_csv(sqlite_workspace, check, out)
    parsed = file_sends.read_contacts(source, multi_address=SplitMode.EACH)
    whole = preflight.validate_file(sqlite_workspace, parsed, skip_mx=True)
    assert out.read_text() == whole.csv()
    assert summary.rows == 13  # 12 data rows, one cell split in two
    assert summary.counts.by_status == whole.counts()
    assert "same address as row 4" in out.read_text()  # c@x.org, split from row 3 into 4


def test_xlsx_above_the_cap_stops_reading_at_the_cap() -> None:
    """Verify an XLSX with more rows than the cap is refused naming the cap, after reading
    the cap's rows and no further."""
    data = workbook(
        [inline_row(1, ["email"]), *(inline_row(n, [f"u{n}@example.com"]) for n in range(2, 400))]
    )
    stream = ContactStream(io.BytesIO(data), source="big.xlsx", max_rows=25, chunk_rows=10)
    with pytest.raises(InputError, match=r"big\.xlsx: more than 25 rows.*nothing was imported"):
        for _ in stream.chunks():
            pass
    assert stream.progress.rows_read == 25
    assert stream.progress.total_rows == 398  # the row tags counted before parsing


def test_a_bad_row_after_stored_chunks_stores_nothing(workspace: Workspace) -> None:
    """Verify a row that cannot be read after several chunks were written rolls the import
    back: no audience, no rows."""
    lines = ["email,name", *(f"u{n}@example.com,U{n}" for n in range(50)), "x@example.com,a,b"]
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    options = FileOptions("bad.csv", chunk_rows=10)
    with pytest.raises(InputError, match=r"bad\.csv, line 52: 3 fields but the header has 2"):
        audience_imports.import_file(
            workspace, data, options, name="half", actor="t", scan=_scan_of_good_part()
        )
    assert audiences.list_audiences(workspace) == []
    with workspace.db.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM audience_rows").scalar_one() == 0


def _scan_of_good_part() -> audience_imports.FileScan:
    data = io.BytesIO(b"email,name\nu0@example.com,U0\n")
    return audience_imports.scan_file(data, FileOptions("bad.csv"))


def test_duplicates_across_chunks_name_the_first_row(workspace: Workspace) -> None:
    """Verify a repeat three chunks after its first row is a duplicate naming that row, in
    the scan's counts and in the stored audience's statuses alike."""
    lines = ["Email,Name", "Ann@Example.com,Ann", "not an address,Bad"]
    lines += [f"u{n}@example.com,U{n}" for n in range(7)]
    lines += ["ann@example.COM,Ann again", "u3@example.com,U3 again"]
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    options = FileOptions("dupes.csv", chunk_rows=2)
    scan = audience_imports.scan_file(data, options)
    assert (scan.rows, scan.accepted, scan.rejected, scan.duplicates) == (11, 8, 1, 2)
    assert [(r.row, r.email) for r in scan.first_rejected] == [(2, "not an address")]
    result = audience_imports.import_file(workspace, data, options, name="d", actor="t", scan=scan)
    assert result.audience.row_count == 11
    _, rows = audiences.rows_with_status(workspace, result.audience.id)
    dupes = [(r.number, r.verdict.reason) for r in rows if r.verdict.status is RowStatus.DUPLICATE]
    assert dupes == [(10, "same address as row 1"), (11, "same address as row 6")]
    rejected = list(audience_imports.iter_rejected(data, options))
    assert [(r.row, r.line, r.email, v["name"]) for r, v in rejected] == [
        (2, 3, "not an address", "Bad")
    ]


def test_seen_addresses_tells_new_from_repeated(tmp_path: Path) -> None:
    """Verify the on-disk set answers as a set would, repeats inside one batch included, and
    deletes its file on close."""
    with SeenAddresses(tmp_path) as seen:
        assert seen.add_many(["a@x.org", "b@x.org", "a@x.org"], [1, 2, 3]) == [True, True, False]
        assert seen.add_many(["b@x.org", "c@x.org"], [4, 5]) == [False, True]
        assert "c@x.org" in seen and "d@x.org" not in seen
        assert seen.first_rows(["a@x.org", "b@x.org", "d@x.org"]) == {"a@x.org": 1, "b@x.org": 2}
        assert len(seen) == 3
        path = seen.path
        assert path.exists()
    assert not path.exists()


def test_first_rows_on_disk_answer_as_in_memory_across_the_writes_to_the_file(
    tmp_path: Path,
) -> None:
    """Verify the freeze's on-disk first rows name the same earlier row as the in-memory ones,
    for repeats within the addresses still held in memory, across a write to the file, and
    after it (3 addresses held at a time, 40 rows, every address three times)."""
    keys = [f"p{i % 13}@x.org" for i in range(40)]
    in_memory = InMemoryFirstRows()
    with FirstRowsOnDisk(pending_limit=3) as on_disk:
        got = [on_disk.first_row(key, row) for row, key in enumerate(keys)]
    assert got == [in_memory.first_row(key, row) for row, key in enumerate(keys)]
    assert got[:13] == [None] * 13 and got[13:16] == [0, 1, 2] and got[39] == 0


def test_audience_import_command_prints_progress_and_counts(tmp_path: Path) -> None:
    """Verify `audience import` stores every row and prints the counts (the real command)."""
    file = tmp_path / "people.csv"
    file.write_text("Email,Name\nann@example.com,Ann\nbad,Bad\nANN@example.com,Ann 2\n")
    done = run_cli(tmp_path, "audience", "import", str(file), "--name", "People")
    assert done.returncode == 0, done.stderr
    assert "reading: 3 rows read (100%)" in done.stderr
    assert "importing: 3 rows read (100%)" in done.stderr
    assert "3 rows, 1 to send to, 1 rejected, 1 duplicates" in done.stdout
    ws = open_workspace(Settings(_env_file=None, OUTREACH_DATA_DIR=tmp_path / "data"))
    try:
        with ws.db.connect() as conn:
            stored = audience_store.find_audience(conn, "People")
            assert stored is not None and stored.row_count == 3
            assert [r[1]["email"] for r in audience_store.iter_rows(conn, stored.id)] == [
                "ann@example.com",
                "bad",
                "ANN@example.com",
            ]
    finally:
        ws.close()


def test_browse_reads_one_page_and_finds_duplicates_of_earlier_pages(
    workspace: Workspace,
) -> None:
    """Verify a page past the first names the row, on an earlier page, its duplicate
    repeats (the page read by the database, the earlier rows looked up there)."""
    lines = ["email", *(f"u{n}@example.com" for n in range(60)), " U3@EXAMPLE.com ", "bad"]
    data = io.BytesIO(("\n".join(lines) + "\n").encode())
    result = audience_imports.import_file(
        workspace, data, FileOptions("p.csv"), name="paged", actor="t"
    )
    page = audiences.browse_rows(workspace, result.audience.id, page=2, page_size=50)
    assert (page.page, page.pages, page.matching, page.total) == (2, 2, 62, 62)
    assert [r.number for r in page.rows] == list(range(51, 63))
    verdicts = {r.number: (r.verdict.status, r.verdict.reason) for r in page.rows}
    assert verdicts[61] == (RowStatus.DUPLICATE, "same address as row 4")
    assert verdicts[62][0] is RowStatus.REJECTED
    assert verdicts[51] == (RowStatus.ACCEPTED, "")
    found = audiences.browse_rows(workspace, result.audience.id, search="duplicate")
    assert [r.number for r in found.rows] == [61]
    csv_text = audiences.audience_csv(workspace, result.audience.id).decode()
    # the leading space went with the CSV's `skipinitialspace`, the trailing one is kept
    expected = "61,U3@EXAMPLE.com ,duplicate,same address as row 4,U3@EXAMPLE.com "
    assert csv_text.splitlines()[61] == expected
