"""Audiences: upload a CSV/XLSX file, map the email column, see every row accounted for, import;
or read contacts from a SQL source with a read-only query."""

import zlib

import pandas as pd
import streamlit as st

from outreach_core import OutreachError, ui
from outreach_core.adapters.contact_mapping import ImportChoices, several_addresses
from outreach_core.domain.address_cells import SplitMode
from outreach_core.domain.column_layouts import propose_mapping
from outreach_core.services import audience_imports, sources
from outreach_core.services import audiences as audience_service
from outreach_core.services.audience_imports import FileOptions, FileScan
from outreach_core.ui import audience_views as views

ws = ui.workspace()

st.title("Audiences")
st.caption("Who will get the email: a spreadsheet, or a query on your own database.")

file_tab, sql_tab, list_tab = st.tabs(["Upload a file", "SQL source", "Saved audiences"])


def scan_upload(upload, options: FileOptions) -> FileScan:
    """The file's counts: read once per file and choices (kept for the reruns after), with a
    progress bar while reading."""
    key = (upload.file_id, options)
    kept = st.session_state.get("upload_scan")
    if kept is not None and kept[0] == key:
        return kept[1]
    scan = audience_imports.scan_file(
        upload,
        options,
        test_environment=ws.settings.test_environment,
        progress=ui.progress_bar("Reading the file"),
    )
    st.session_state["upload_scan"] = (key, scan)
    return scan


def upload_file() -> None:
    """The upload tab: the file, its columns mapped, every row accounted for, the import.

    The file is read in chunks (the first rows for the pickers, then once for the counts and
    once more to import): memory does not grow with its rows."""
    upload = st.file_uploader(
        "Contacts file (CSV or XLSX)", type=["csv", "txt", "xlsx"], key="upload"
    )
    if upload is None:
        st.info(
            "Upload a CSV (comma, semicolon, tab or pipe) or an XLSX file to begin. Exports of "
            "Google Contacts, Outlook, HubSpot, Mailchimp, Salesforce, LinkedIn and Apple "
            "Contacts (vCard to CSV) are recognised."
        )
        return
    # the pickers are the file's own: another file gets its columns proposed afresh
    tag = upload.file_id
    sheet = None
    if upload.name.lower().endswith(".xlsx"):
        sheet = st.text_input("Sheet (empty = the first)", key="sheet") or None
    try:
        first = audience_imports.read_head(upload, source=upload.name, sheet=sheet, rows=200)
    except OutreachError as exc:
        st.error(ui.plain(str(exc)))
        return
    proposed = propose_mapping(first.headers, views.samples(first))
    st.caption(f"Looks like an export of {proposed.layout}: check the columns below.")
    if first.email_column:
        detected: str | None = first.headers[first.columns.index(first.email_column)]
    else:
        detected = proposed.email
    email_column, first_column, last_column, company_column = st.columns(4)
    chosen = email_column.selectbox(
        "Email column",
        first.headers,
        index=first.headers.index(detected) if detected else None,
        format_func=lambda h: views.column_preview(first, h),
        placeholder="Choose the column holding the addresses",
        key=f"email_col_{tag}",
    )
    roles: dict[str, str | None] = {}
    options: list[str | None] = [None, *first.headers]
    for column, (role, label) in zip(
        (first_column, last_column, company_column),
        [("first_name", "First name"), ("last_name", "Last name"), ("company", "Company")],
        strict=True,
    ):
        roles[role] = column.selectbox(
            f"{label} → `{role}`",
            options,
            index=options.index(proposed.roles()[role]),
            format_func=lambda h: views.column_preview(first, h),
            key=f"map_{role}_{tag}",
        )
    if chosen is None:
        st.warning("No column looks like an email column: choose it above.")
        return
    split = SplitMode(st.session_state.get(f"split_mode_{tag}", SplitMode.FIRST))
    file_options = FileOptions(upload.name, sheet, ImportChoices(chosen, roles, split))
    try:
        scan = scan_upload(upload, file_options)
    except OutreachError as exc:
        st.error(ui.plain(str(exc)))
        return
    if scan.multi_cells:
        st.radio(
            several_addresses(scan.multi_cells, chosen),
            list(SplitMode),
            format_func=lambda m: {
                SplitMode.FIRST: "Keep the first address",
                SplitMode.EACH: "One row per address",
            }[m],
            horizontal=True,
            key=f"split_mode_{tag}",
        )
    for note in scan.notes:
        st.warning(ui.plain(note))
    counts = [
        ("Rows", scan.rows),
        ("Imported", scan.accepted),
        ("Rejected", scan.rejected),
        ("Duplicates", scan.duplicates),
    ]
    for column, (label, value) in zip(st.columns(4), counts, strict=True):
        column.metric(label, value, border=True)
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
        scan.delimiter or "", "XLSX"
    )
    st.caption(
        f"Encoding {scan.encoding} · {delimiter} · every column becomes a template variable: "
        + ", ".join(f"`{c}` ({h})" for c, h in zip(scan.columns, scan.headers, strict=True))
    )
    st.subheader("Preview")
    st.dataframe(
        pd.DataFrame(scan.preview, columns=scan.columns),
        hide_index=True,
        column_order=[scan.email_column, *(c for c in scan.columns if c != scan.email_column)],
    )
    if scan.rejected:
        shown = "" if scan.rejected <= len(scan.first_rejected) else ", the first shown"
        st.subheader(f"Rejected rows ({scan.rejected}{shown})")
        ui.table(views.scan_rejected_frame(scan), first=["row", "line"])
        ui.csv_download(
            "Download rejected rows",
            lambda: views.rejected_csv(
                scan,
                audience_imports.iter_rejected(
                    upload, file_options, test_environment=ws.settings.test_environment
                ),
            ),
            file_name="rejected.csv",
            key="rejected_download",
        )
    if scan.duplicates:
        shown = "" if scan.duplicates <= len(scan.first_duplicates) else ", the first shown"
        st.subheader(f"Duplicates ({scan.duplicates}{shown})")
        st.dataframe(views.duplicates_frame(scan), hide_index=True)
    name = st.text_input("Audience name", value=upload.name.rsplit(".", 1)[0], key=f"name_{tag}")
    nothing = not scan.accepted
    if nothing:
        st.error(
            f"No row would import: column {chosen!r} holds no usable address "
            f"({scan.rejected} rejected). Choose the column holding the addresses."
        )
    else:
        st.caption(
            "Every row is kept with its status (rejected rows and duplicates are not sent); "
            "see them under **Saved audiences**."
        )
    if st.button("Import audience", type="primary", key="import", disabled=nothing) and (
        ui.require_role("sender")
    ):
        try:
            result = audience_imports.import_file(
                ws,
                upload,
                file_options,
                name=name,
                actor=ui.actor(),
                scan=scan,
                progress=ui.progress_bar("Importing"),
            )
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
        else:
            st.success(
                f"Imported {result.audience.name!r}: {scan.accepted} rows to send to, "
                f"{scan.rejected} rejected, {scan.duplicates} duplicates "
                f"({result.audience.row_count} rows kept)."
            )


with file_tab:
    upload_file()

with sql_tab:
    st.caption(
        "One SELECT (or WITH … SELECT), run read-only. Parameters: `:run_date`, `:today`, and "
        "your own as `name=value` lines. The URL is stored encrypted. Connect with a database "
        "role that can only read."
    )
    url = st.text_input(
        "Connection URL",
        placeholder="sqlite:///crm.db or postgresql+psycopg://…",
        type="password",
        key="sql_url",
    )
    query = st.text_area("Query", height=120, key="sql_query")
    params_text = st.text_area("Parameters (name=value per line)", height=68, key="sql_params")
    cap = st.number_input(
        "Row cap", min_value=1, value=sources.DEFAULT_ROW_CAP, step=1000, key="sql_cap"
    )
    if st.button("Test query", key="sql_test") and ui.require_role("sender"):
        st.session_state.pop("sql_result", None)
        try:
            result = sources.try_query(
                url, query, sources.parse_parameters(params_text), row_cap=int(cap)
            )
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
        else:
            st.session_state["sql_result"] = result
    result = st.session_state.get("sql_result")
    if result is not None:
        for warning in result.warnings:
            st.warning(ui.plain(warning))
        st.success(f"{result.total} rows in {result.elapsed_s:.2f} s (first 100 shown).")
        st.dataframe(pd.DataFrame(result.preview, columns=result.columns), hide_index=True)
        sql_audience = st.text_input("Audience name for these rows", key="sql_audience")
        if st.button("Import rows as audience", key="sql_import") and ui.require_role("sender"):
            try:
                audience, report = sources.import_query_rows(
                    ws, result, name=sql_audience, actor=ui.actor()
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.success(
                    ui.plain(
                        f"Imported {audience.name!r}: {len(report.imported)} rows to send to, "
                        f"{len(report.rejected)} rejected, {len(report.duplicates)} duplicates "
                        f"({audience.row_count} rows kept, with their status under Saved "
                        "audiences)."
                    )
                )
    source_name = st.text_input("Source name", key="sql_name")
    if st.button("Save source", key="sql_save") and ui.require_role("sender"):
        try:
            saved = sources.save_source(
                ws,
                name=source_name,
                url=url,
                query=query,
                values=sources.parse_parameters(params_text),
                row_cap=int(cap),
                actor=ui.actor(),
            )
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
        else:
            st.success(f"Saved source {saved.name!r} ({saved.display_url}).")
    saved_sources = sources.list_sources(ws)
    if saved_sources:
        st.dataframe(
            pd.DataFrame(
                [(s.name, s.display_url, s.query, s.row_cap) for s in saved_sources],
                columns=["name", "database", "query", "row cap"],
            ),
            hide_index=True,
        )
        st.markdown("**Recurring audience**")
        st.caption(
            "An audience that *is* the saved query: every run re-runs it, with `:last_run_at` "
            "(when this workflow's last completed run started) and `:run_date`, so a daily "
            "schedule mails only the contacts the query returns that day."
        )
        by_name = {s.name: s for s in saved_sources}
        pick_column, name_column = st.columns(2)
        picked_source = pick_column.selectbox("Saved source", list(by_name), key="rec_source")
        recurring_name = name_column.text_input("Audience name", key="rec_name")
        if st.button("Create recurring audience", key="rec_create") and ui.require_role("sender"):
            try:
                recurring = sources.save_recurring_audience(
                    ws, by_name[picked_source].id, name=recurring_name, actor=ui.actor()
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.success(
                    f"Audience {recurring.name!r} re-runs {picked_source!r} for every run "
                    f"({recurring.row_count} rows today)."
                )


def saved_audiences() -> None:
    """The saved audiences: a list, then one audience's rows (searchable, paged), its CSV,
    rename and delete."""
    feedback = st.session_state.pop("aud_feedback", None)
    if feedback:
        st.success(ui.plain(feedback))
    stored = audience_service.list_audiences(ws)
    if not stored:
        st.info("No audience yet: upload a file in the first tab.")
        return
    st.dataframe(
        pd.DataFrame(
            [(a.name, a.row_count, a.email_column, a.source) for a in stored],
            columns=["name", "rows", "email column", "source"],
        ),
        hide_index=True,
    )
    by_id = {a.id: a for a in stored}
    ids = list(by_id)
    current = st.session_state.get("aud_current")
    # keyed by the names shown: after a rename or delete the picker is drawn afresh, on the
    # same audience when it is still there
    names_tag = zlib.crc32("\n".join(a.name for a in stored).encode())
    picked = st.selectbox(
        "Audience",
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=lambda i: by_id[i].name,
        key=f"aud_pick_{names_tag}",
    )
    st.session_state["aud_current"] = picked
    audience = by_id[picked]
    search_column, page_column = st.columns([3, 1])
    search = search_column.text_input(
        "Search", placeholder="any value, status or reason", key="aud_search"
    )
    page = int(
        page_column.number_input("Page", min_value=1, value=1, key=f"aud_page_{picked}_{search}")
    )
    shown = audience_service.browse_rows(ws, picked, search=search, page=page)
    ui.table(views.audience_frame(audience, shown.rows), first=["row"], key="aud_rows")
    st.caption(
        f"Page {shown.page} of {shown.pages} · {shown.matching} of {shown.total} rows match"
        + (f" {search.strip()!r}" if search.strip() else "")
    )
    ui.csv_download(
        "Download all rows with status and reason",
        lambda: audience_service.audience_csv(ws, audience.id),
        file_name=f"{audience.name}.csv",
        key="aud_download",
    )
    rename_column, delete_column = st.columns(2)
    with rename_column.form(f"aud_rename_{audience.id}", border=True):
        new_name = st.text_input("New name", value=audience.name, key=f"aud_new_name_{audience.id}")
        if st.form_submit_button("Rename") and ui.require_role("sender"):
            try:
                renamed = audience_service.rename_audience(
                    ws, audience.id, new_name, actor=ui.actor()
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.session_state["aud_feedback"] = f"Renamed to {renamed.name!r}."
                st.rerun()
    with delete_column.container(border=True):
        users = audience_service.workflows_using(ws, audience.id)
        if users:
            named = ", ".join(repr(u) for u in users)
            st.caption(
                f"Cannot be deleted while the workflow {named} sends to it."
                if len(users) == 1
                else f"Cannot be deleted while the workflows {named} send to it."
            )
        sure = st.checkbox(f"Delete {audience.name!r} and its rows", key=f"aud_sure_{audience.id}")
        if st.button("Delete audience", key="aud_delete", disabled=not sure) and (
            ui.require_role("sender")
        ):
            try:
                gone = audience_service.delete_audience(ws, audience.id, actor=ui.actor())
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.session_state["aud_feedback"] = f"Deleted {gone!r}."
                st.rerun()


with list_tab:
    saved_audiences()
