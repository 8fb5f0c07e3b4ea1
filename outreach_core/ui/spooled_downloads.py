"""Download buttons for CSVs that may hold a row per recipient (a run's outcomes, a dry run):
the file is made only when the button is clicked, its rows written one by one into a spooled
temporary file (kept in memory while small, on disk past `SPOOL_IN_MEMORY`), never built as
one string or a table of every row. Streamlit serves a download from its own memory, so the
finished file's bytes are handed to it once; no per-row object is held meanwhile.

The writer neutralises formula-like cells itself (`adapters.csv_files.CsvRowWriter`), as the
services' CSV writers all do.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from typing import TextIO

import streamlit as st

#: bytes a download's CSV may take in memory before its spool moves to a temporary file
SPOOL_IN_MEMORY = 4 * 1024 * 1024

#: what a download's writer is given: a UTF-8 text file to write the CSV into
CsvWriter = Callable[[TextIO], object]


def spooled_csv(write: CsvWriter) -> bytes:
    """The bytes of the CSV `write` produces, written through a spooled temporary file."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, mode="w+b") as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        write(text)
        text.flush()
        text.detach()  # closing the wrapper would close the spool before it is read
        spool.seek(0)
        return spool.read()


def streamed_csv_download(
    label: str, write: CsvWriter, *, file_name: str, key: str | None = None
) -> None:
    """A CSV download button, alike on every page, whose file `write` makes when clicked (the
    click does not rerun the page)."""
    st.download_button(
        label,
        data=lambda: spooled_csv(write),
        file_name=file_name,
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=key,
    )
