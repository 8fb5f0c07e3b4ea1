"""Streamlit glue for Home.py and the pages: the one workspace of the server process.

The only part of outreach_core that imports streamlit; the table and checklist builders
live in `outreach_core.ui.views` and do not.
"""

from __future__ import annotations

from datetime import tzinfo

import sqlalchemy as sa
import streamlit as st

from outreach_core.errors import ConfigError
from outreach_core.settings import load_settings
from outreach_core.ui.views import (
    ChecklistItem,
    database_label,
    format_time,
    ledger_frame,
    recent_runs_frame,
    run_label,
    run_status_line,
    setup_checklist,
    timezone,
)
from outreach_core.workspace import Workspace, open_workspace

__all__ = [
    "ChecklistItem",
    "browser_timezone",
    "database_label",
    "format_time",
    "ledger_frame",
    "recent_runs_frame",
    "run_label",
    "run_status_line",
    "setup_checklist",
    "workspace",
]


@st.cache_resource(show_spinner="Opening the database…", on_release=Workspace.close)
def workspace() -> Workspace:
    """The workspace from the environment, opened (and migrated) once per server process.

    A bad setting raises ConfigError (not cached, so fixing `.env` and reloading works);
    a database that cannot be reached is reported the same way, without its password.
    """
    try:
        return open_workspace()
    except sa.exc.OperationalError as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        label = database_label(load_settings())
        raise ConfigError(f"cannot open the database {label}: {first_line}") from None


def browser_timezone() -> tzinfo:
    """The viewer's time zone (from the browser), UTC when it is not known."""
    return timezone(st.context.timezone)
