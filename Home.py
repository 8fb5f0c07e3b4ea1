"""Outreach dashboard: the router. `streamlit run Home.py` (or `make run`).

Every page runs inside this script: page config, navigation, the workspace and the sidebar
are set up here once, then the chosen page from pages/ draws itself.
"""

import streamlit as st

from outreach_core import ConfigError, ui

st.set_page_config(page_title="Outreach", layout="wide")
ui.mark_routed()

# Navigation first, so the sidebar never falls back to listing pages/ on its own. Page icons
# are emoji: the browser draws them (a `:material/…:` page icon makes the browser fetch the
# favicon from fonts.gstatic.com, and the dashboard asks no other host for anything).
page = st.navigation(
    [
        st.Page(
            "pages/overview.py",
            title="Overview",
            icon="🏠",
            url_path="overview",
            default=True,
        ),
        st.Page("pages/audiences.py", title="Audiences", icon="👥", url_path="audiences"),
        st.Page("pages/dry_run.py", title="Dry run", icon="🔎", url_path="dry-run"),
        st.Page(
            "pages/workflows.py",
            title="Workflows",
            icon="🔀",
            url_path="workflows",
        ),
        st.Page("pages/send.py", title="Send", icon="📤", url_path="send"),
        st.Page("pages/engines.py", title="Engines", icon="📮", url_path="engines"),
        st.Page("pages/runs.py", title="Runs", icon="🕘", url_path="runs"),
        st.Page(
            "pages/schedules.py",
            title="Schedules",
            icon="⏰",
            url_path="schedules",
        ),
        st.Page("pages/results.py", title="Results", icon="📊", url_path="results"),
        st.Page("pages/replies.py", title="Replies", icon="💬", url_path="replies"),
        st.Page(
            "pages/templates.py",
            title="Templates",
            icon="📝",
            url_path="templates",
        ),
        st.Page(
            "pages/suppressions.py",
            title="Suppressions",
            icon="🚫",
            url_path="suppressions",
        ),
        st.Page("pages/audit.py", title="Audit", icon="📜", url_path="audit"),
    ],
    # every page listed: past ten, Streamlit would hide the rest behind "View more"
    expanded=True,
)

try:
    ws = ui.workspace()
except ConfigError as exc:
    ui.settings_error(exc)

# Access before any page: off the loopback address, only signed-in users get one.
ui.gate(ws.settings)
st.sidebar.caption(f"Database: {ui.database_label(ws.settings)}")
page.run()
