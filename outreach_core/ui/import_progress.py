"""Progress bars of a file read in chunks (`ReadProgress`): one bar, rewritten after each chunk."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from outreach_core.adapters.contact_stream import ReadProgress


def progress_bar(label: str) -> Callable[[ReadProgress], None]:
    """A bar shown now at 0 and moved by each call: `Reading the file: 5,000 rows read (3%)`."""
    bar = st.progress(0.0, text=f"{label}: starting")

    def show(progress: ReadProgress) -> None:
        bar.progress(progress.fraction, text=f"{label}: {progress.line()}")

    return show
