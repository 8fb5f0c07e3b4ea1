"""Outreach dashboard: the router. `streamlit run Home.py` (or `make run`).

Every page runs inside this script: page config, navigation, the workspace and the sidebar
are set up here once, then the chosen page from pages/ draws itself.
"""

import streamlit as st

from outreach_core import ConfigError, ui

st.set_page_config(page_title="Outreach", layout="wide")
ui.mark_routed()

# Navigation first, so the sidebar never falls back to listing pages/ on its own.
page = st.navigation(
    [
        st.Page(
            "pages/overview.py",
            title="Overview",
            icon=":material/dashboard:",
            url_path="overview",
            default=True,
        ),
        st.Page(
            "pages/audiences.py", title="Audiences", icon=":material/group:", url_path="audiences"
        ),
        st.Page(
            "pages/dry_run.py", title="Dry run", icon=":material/fact_check:", url_path="dry-run"
        ),
        st.Page(
            "pages/workflows.py",
            title="Workflows",
            icon=":material/account_tree:",
            url_path="workflows",
        ),
        st.Page("pages/send.py", title="Send", icon=":material/send:", url_path="send"),
        st.Page("pages/engines.py", title="Engines", icon=":material/outbox:", url_path="engines"),
        st.Page("pages/runs.py", title="Runs", icon=":material/history:", url_path="runs"),
        st.Page(
            "pages/schedules.py",
            title="Schedules",
            icon=":material/schedule:",
            url_path="schedules",
        ),
        st.Page(
            "pages/results.py", title="Results", icon=":material/insights:", url_path="results"
        ),
        st.Page(
            "pages/templates.py",
            title="Templates",
            icon=":material/edit_note:",
            url_path="templates",
        ),
        st.Page(
            "pages/suppressions.py",
            title="Suppressions",
            icon=":material/block:",
            url_path="suppressions",
        ),
        st.Page("pages/audit.py", title="Audit", icon=":material/policy:", url_path="audit"),
    ]
)

try:
    ws = ui.workspace()
except ConfigError as exc:
    ui.settings_error(exc)

# Access before any page: off the loopback address, only signed-in users get one.
ui.gate(ws.settings)
st.sidebar.caption(f"Database: {ui.database_label(ws.settings)}")
page.run()
