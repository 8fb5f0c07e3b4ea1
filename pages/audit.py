"""Audit: every change made through the dashboard, the CLI, links and webhooks — who, what,
when."""

import streamlit as st

from outreach_core import ui
from outreach_core.services import compliance
from outreach_core.ui.compliance_views import audit_frame

ws = ui.workspace()
tz = ui.browser_timezone()

st.title("Audit")
st.caption(
    "Who changed what, newest first: imports, templates, engines, runs, the suppression list, "
    "unsubscribes and provider feedback. Secrets are never recorded."
)
search, limit = st.columns([3, 1])
needle = search.text_input("Search", placeholder="user, action or subject", key="audit_search")
count = limit.selectbox("Show", options=[100, 500, 2000], key="audit_limit")
entries = compliance.audit_entries(ws, search=needle, limit=count)
if entries:
    st.dataframe(
        audit_frame(entries, tz),
        hide_index=True,
        width="stretch",
        column_config={"Who": st.column_config.TextColumn(width="medium")},
    )
else:
    st.info("No entry matches." if needle.strip() else "Nothing recorded yet.")
