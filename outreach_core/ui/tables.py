"""Tables drawn alike on every page: the columns a person reads first (the address, its
status, the reason) on the left, long text in wide columns (the full text shows on hover and
in the cell's overlay)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

#: the address, status and reason columns under the names the tables use, in reading order
READ_FIRST = (
    "email_normalized",
    "email",
    "Email",
    "status",
    "Status",
    "State",
    "Verdict",
    "reason",
    "Reason",
    "What it means",
    "last reply",
)
#: status columns: wide enough for the longest status (`invalid_syntax`, `render_error`)
STATUS = frozenset({"status", "Status", "State", "Verdict"})
#: columns holding long text: drawn wide
WIDE = frozenset({"reason", "Reason", "What it means", "last reply", "Found", "Detail"})


def reading_order(columns: Iterable[object]) -> list[str]:
    """The columns with the address, status and reason first (in that order), then the rest
    as they were."""
    names = [str(c) for c in columns]
    first = [c for c in READ_FIRST if c in names]
    return first + [c for c in names if c not in first]


def table(
    frame: pd.DataFrame,
    *,
    column_config: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    first: Sequence[str] = (),
    **kwargs: Any,
) -> None:
    """`st.dataframe` without the index, the reading columns first (`first` before them),
    long-text columns wide; `labels` renames headers on screen only (the frame, and so its
    CSV, keeps its names)."""
    config: dict[str, Any] = {}
    for name in map(str, frame.columns):
        label = (labels or {}).get(name)
        if name in WIDE:
            config[name] = st.column_config.TextColumn(label or name, width="large")
        elif name in STATUS:
            config[name] = st.column_config.TextColumn(label or name, width="medium")
        elif label:
            config[name] = st.column_config.Column(label)
    config.update(column_config or {})
    order = reading_order(frame.columns)
    order = [c for c in first if c in order] + [c for c in order if c not in first]
    st.dataframe(frame, hide_index=True, column_order=order, column_config=config, **kwargs)
