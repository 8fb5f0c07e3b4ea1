"""The Audiences page reading and importing an upload in chunks, with its progress bars."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from outreach_core import services
from tests.e2e.dashboard import HOME, keyed, open_test_workspace

ROWS = 40
UPLOAD = (
    "Email,Name\n"
    + "".join(f"person{n}@example.com,Person {n}\n" for n in range(ROWS))
    + "person0@example.com,Again\nnot an address,Bad\n"
).encode()


def _progress_texts(at: AppTest) -> list[str]:
    return [bar.proto.text for bar in at.get("progress")]


def test_upload_shows_reading_then_importing_progress_and_the_counts(data_dir: Path) -> None:
    """Verify the page shows `Reading the file: N rows read (100%)` with the counts, then
    `Importing: …` and the result, and that every row was stored."""
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/audiences.py").run()
    at.file_uploader(key="upload").upload("people.csv", UPLOAD, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _progress_texts(at) == [f"Reading the file: {ROWS + 2} rows read (100%)"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Rows": "42", "Imported": "40", "Rejected": "1", "Duplicates": "1"}
    keyed(at.text_input, "name").set_value("people").run()
    # the counts come from the first reading: a rerun does not read the file again
    assert _progress_texts(at) == []
    at.button(key="import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _progress_texts(at) == [f"Importing: {ROWS + 2} rows read (100%)"]
    assert "Imported 'people': 40 rows to send to, 1 rejected, 1 duplicates" in at.success[0].value
    ws = open_test_workspace(data_dir)
    try:
        assert [(a.name, a.row_count) for a in services.list_audiences(ws)] == [("people", 42)]
    finally:
        ws.close()
