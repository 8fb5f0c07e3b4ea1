"""Streamlit glue for Home.py and the pages: the one workspace of the server process.

The only part of outreach_core that imports streamlit; the table and checklist builders
live in `outreach_core.ui.views` and do not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

import pandas as pd
import streamlit as st

from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.csv_cells import neutralise_csv
from outreach_core.domain.unsubscribe_checks import Severity, UnsubscribeFinding
from outreach_core.ui import auth
from outreach_core.ui.auth import actor, can, current_user, gate, require_role, settings_error
from outreach_core.ui.charts import LEDGER_FIRST, csv_bytes
from outreach_core.ui.compliance_views import domain_check_frame
from outreach_core.ui.import_progress import progress_bar
from outreach_core.ui.preflight_views import (
    confirm_send,
    error_text,
    missing_variable_warnings,
    preflight_summary,
)
from outreach_core.ui.steps_editor import step_reach_table, steps_editor
from outreach_core.ui.tables import reading_order, table
from outreach_core.ui.views import (
    CLI_SEND,
    CLI_SEND_BLOCK,
    LEDGER_LABELS,
    ChecklistItem,
    database_label,
    engine_label,
    format_time,
    ledger_frame,
    limits_summary,
    plain,
    recent_runs_frame,
    row_frame,
    run_label,
    run_status_line,
    sandboxed_frame,
    setup_checklist,
    timezone,
    versions_frame,
    waiting_frame,
    workflows_frame,
)

__all__ = [
    "CLI_SEND",
    "CLI_SEND_BLOCK",
    "LEDGER_FIRST",
    "ChecklistItem",
    "actor",
    "browser_timezone",
    "can",
    "confirm_send",
    "csv_download",
    "current_user",
    "database_label",
    "domain_check_frame",
    "engine_label",
    "error_text",
    "format_time",
    "gate",
    "ledger_column_config",
    "ledger_frame",
    "limits_summary",
    "mark_routed",
    "missing_variable_warnings",
    "plain",
    "preflight_summary",
    "progress_bar",
    "reading_order",
    "recent_runs_column_config",
    "recent_runs_frame",
    "require_role",
    "row_frame",
    "run_label",
    "run_status_line",
    "sandboxed_frame",
    "settings_error",
    "setup_checklist",
    "step_reach_table",
    "steps_editor",
    "table",
    "unsubscribe_notes",
    "versions_frame",
    "waiting_frame",
    "workflows_frame",
    "workspace",
]


_ROUTED_KEY = "_outreach_routed"


def mark_routed() -> None:
    """Home.py says it is framing this session's pages (see `workspace`)."""
    st.session_state[_ROUTED_KEY] = True


def workspace() -> Workspace:
    """The workspace from the environment, opened (and migrated) once per server process.

    A bad setting or an unreachable database raises ConfigError (not cached, so fixing
    `.env` and reloading works).

    A deep link opened before any session has run Home.py makes Streamlit fall back to its
    legacy `pages/` mode and run the page alone, without the router. Such a page switches
    that mode off and reruns, so Home.py frames it and the same page is shown.
    """
    if not st.session_state.get(_ROUTED_KEY):
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()
    ws = _open_workspace()
    auth.check(ws.settings)
    return ws


@st.cache_resource(show_spinner="Opening the database…", on_release=Workspace.close)
def _open_workspace() -> Workspace:
    return open_workspace()


def browser_timezone() -> tzinfo:
    """The viewer's time zone (from the browser), UTC when it is not known."""
    return timezone(st.context.timezone)


def recent_runs_column_config() -> dict[str, object]:
    """How the recent-runs table shows its columns."""
    return {
        "Run": st.column_config.NumberColumn(width="small", format="%d"),
        "Workflow": st.column_config.TextColumn(width="medium"),
        "Failed": st.column_config.NumberColumn(help="failed + deferred + unknown"),
    }


def ledger_column_config() -> dict[str, object]:
    """Readable headers and widths for the ledger; the data keeps the CSV's column names."""
    config: dict[str, object] = {
        name: st.column_config.Column(label, width=width)
        for name, (label, width) in LEDGER_LABELS.items()
    }
    for column in ("sent_at", "feedback_at"):
        config[column] = st.column_config.DatetimeColumn(
            LEDGER_LABELS[column][0], width="medium", format="YYYY-MM-DD HH:mm:ss z"
        )
    config["row_number"] = st.column_config.NumberColumn(
        LEDGER_LABELS["row_number"][0], width="small", help="row in the audience file"
    )
    return config


def unsubscribe_notes(findings: list[UnsubscribeFinding]) -> None:
    """Each unsubscribe finding as a warning or an info box; they inform, never block."""
    for finding in findings:
        if finding.severity is Severity.WARNING:
            st.warning(finding.message, icon=":material/warning:")
        else:
            st.info(finding.message, icon=":material/info:")


def csv_download(
    label: str,
    data: str | bytes | pd.DataFrame | Callable[[], str | bytes],
    *,
    file_name: str,
    key: str | None = None,
) -> None:
    """A download button for a CSV, alike on every page; the click does not rerun the page
    (`data` may be a callable, made only when clicked; a data frame is written without its
    index). Every cell a spreadsheet would run as a formula is neutralised here, whatever made
    the CSV (`domain.csv_cells`)."""
    st.download_button(
        label,
        data=(lambda: _safe_csv(data())) if callable(data) else _safe_csv(data),
        file_name=file_name,
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
        key=key,
    )


def _safe_csv(data: str | bytes | pd.DataFrame) -> bytes:
    if isinstance(data, pd.DataFrame):
        return csv_bytes(data)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return neutralise_csv(text).encode("utf-8")
