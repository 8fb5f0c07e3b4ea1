"""Suppressions: the global list of addresses never sent to (unsubscribed, bounced,
complained, added by hand), with search, add, remove, CSV import and export."""

import streamlit as st

from outreach_core import OutreachError, ui
from outreach_core.domain.models import SuppressionReason
from outreach_core.services import compliance
from outreach_core.ui.compliance_views import suppressions_frame
from outreach_core.ui.spooled_downloads import streamed_csv_download

ws = ui.workspace()
tz = ui.browser_timezone()


def add() -> None:
    """Button callback (before the page draws, so the table below shows the change)."""
    if not ui.require_role("sender"):
        return
    email = st.session_state.get("supp_add_email", "")
    try:
        added = compliance.suppress(
            ws, email, reason=st.session_state["supp_add_reason"], actor=ui.actor()
        )
    except OutreachError as exc:
        st.session_state["supp_feedback"] = [("error", str(exc))]
    else:
        text = f"{email.strip()} added." if added else f"{email.strip()} was already listed."
        st.session_state["supp_feedback"] = [("success", text)]


def remove() -> None:
    """Button callback: take an address off the list."""
    if not ui.require_role("sender"):
        return
    email = st.session_state.get("supp_remove_email", "")
    try:
        removed = compliance.unsuppress(ws, email, actor=ui.actor())
    except OutreachError as exc:
        st.session_state["supp_feedback"] = [("error", str(exc))]
    else:
        text = f"{email.strip()} removed." if removed else f"{email.strip()} is not on the list."
        st.session_state["supp_feedback"] = [("success" if removed else "warning", text)]


def import_file() -> None:
    """Button callback: add the addresses of the uploaded CSV, reporting each bad row."""
    file = st.session_state.get("supp_file")
    if file is None or not ui.require_role("sender"):
        return
    try:
        result = compliance.import_suppressions(
            ws, file.getvalue(), source=file.name, actor=ui.actor()
        )
    except OutreachError as exc:
        st.session_state["supp_feedback"] = [("error", str(exc))]
    else:
        st.session_state["supp_feedback"] = [
            ("success", f"Imported {file.name}: {result}."),
            *(("error", problem) for problem in result.errors),
        ]


st.title("Suppressions")
st.caption(
    "Nobody on this list is sent to: it is checked when a run freezes its audience and again "
    "just before each batch goes out. Unsubscribe links, bounces and complaints add to it."
)
for kind, text in st.session_state.pop("supp_feedback", []):
    getattr(st, kind)(text)

st.metric("Suppressed addresses", compliance.count_suppressions(ws), border=True)
search = st.text_input("Search", placeholder="part of an address", key="supp_search")
items = compliance.list_suppressions(ws, search=search)
if items:
    st.dataframe(suppressions_frame(items, tz), hide_index=True, width="stretch")
else:
    st.info("No address matches." if search.strip() else "The list is empty.")

locked = not ui.can("sender")
adding, removing = st.columns(2, gap="large")
with adding:
    st.subheader("Add")
    st.text_input("Email", key="supp_add_email", disabled=locked)
    st.selectbox(
        "Reason",
        options=list(SuppressionReason),
        index=list(SuppressionReason).index(SuppressionReason.MANUAL),
        key="supp_add_reason",
        disabled=locked,
    )
    st.button("Add", key="supp_add", disabled=locked, on_click=add)
with removing:
    st.subheader("Remove")
    st.text_input("Email", key="supp_remove_email", disabled=locked)
    st.caption("Only remove an address whose owner asked to hear from you again.")
    st.button("Remove", key="supp_remove", disabled=locked, on_click=remove)

upload, export = st.columns(2, gap="large")
with upload:
    st.subheader("Import CSV")
    st.caption(
        "An email column; optionally a `reason` column (unsubscribed, bounced, complained, "
        "manual; empty means manual)."
    )
    file = st.file_uploader("CSV file", type=["csv", "txt"], key="supp_file", disabled=locked)
    st.button("Import", key="supp_import", disabled=locked or file is None, on_click=import_file)
with export:
    st.subheader("Export CSV")
    streamed_csv_download(
        "Download the list",
        lambda out: compliance.write_suppressions_csv(ws, out),
        file_name="suppressions.csv",
        key="supp_export",
    )
