"""Audiences: upload a CSV/XLSX file, map the email column, see every row accounted for, import;
or read contacts from a SQL source with a read-only query."""

import pandas as pd
import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.adapters.contact_files import parse_file, sort_rows
from outreach_core.services import sources

ws = ui.workspace()

st.title("Audiences")
st.caption("Who will get the email: a spreadsheet, or a query on your own database.")

file_tab, sql_tab, list_tab = st.tabs(["Upload a file", "SQL source", "Saved audiences"])

with file_tab:
    upload = st.file_uploader(
        "Contacts file (CSV or XLSX)", type=["csv", "txt", "xlsx"], key="upload"
    )
    if upload is None:
        st.info("Upload a CSV (comma, semicolon, tab or pipe) or an XLSX file to begin.")
    else:
        data = upload.getvalue()
        try:
            first = parse_file(data, source=upload.name)
        except OutreachError as exc:
            if "no email column" not in str(exc):
                st.error(ui.plain(str(exc)))
                st.stop()
            first = None
        headers: list[str] = []
        if first is not None:
            headers = first.headers
        else:
            st.warning("No column looks like an email column: choose it below.")
        col_a, col_b = st.columns(2)
        sheet = None
        if upload.name.lower().endswith(".xlsx"):
            sheet = col_b.text_input("Sheet (empty = the first)", key="sheet") or None
        chosen = None
        if first is not None:
            detected = first.headers[first.columns.index(first.email_column)]
            chosen = col_a.selectbox(
                "Email column", first.headers, index=first.headers.index(detected), key="email_col"
            )
        else:
            chosen = col_a.text_input("Email column (its header)", key="email_col_text") or None
        try:
            parsed = parse_file(data, source=upload.name, email_column=chosen, sheet=sheet)
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
            st.stop()
        report = sort_rows(parsed, test_environment=ws.settings.test_environment)
        for note in parsed.notes:
            st.warning(ui.plain(note))
        counts = [
            ("Rows", report.total),
            ("Imported", len(report.imported)),
            ("Rejected", len(report.rejected)),
            ("Duplicates", len(report.duplicates)),
        ]
        for column, (label, value) in zip(st.columns(4), counts, strict=True):
            column.metric(label, value, border=True)
        delimiter = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
            parsed.delimiter or "", "XLSX"
        )
        st.caption(
            f"Encoding {parsed.encoding} · {delimiter} · every other column becomes a template "
            "variable: "
            + ", ".join(f"`{c}` ({h})" for c, h in zip(parsed.columns, parsed.headers, strict=True))
        )
        st.subheader("Preview")
        st.dataframe(pd.DataFrame(report.imported[:100]), hide_index=True)
        if report.rejected:
            st.subheader(f"Rejected rows ({len(report.rejected)})")
            rejected = pd.DataFrame(
                [(r.row, r.line, r.email, r.reason) for r in report.rejected],
                columns=["row", "line", "email", "reason"],
            )
            st.dataframe(rejected, hide_index=True)
            ui.csv_download(
                "Download rejected rows",
                rejected,
                file_name="rejected.csv",
                key="rejected_download",
            )
        if report.duplicates:
            st.subheader(f"Duplicates ({len(report.duplicates)})")
            st.dataframe(
                pd.DataFrame(
                    [(d.row, d.line, d.email, d.first_row) for d in report.duplicates],
                    columns=["row", "line", "email", "same as row"],
                ),
                hide_index=True,
            )
        name = st.text_input("Audience name", value=upload.name.rsplit(".", 1)[0], key="name")
        if st.button("Import audience", type="primary", key="import") and ui.require_role("sender"):
            try:
                audience = services.import_audience(
                    ws, report.audience_file(), name=name, actor=ui.actor()
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.success(f"Imported {audience.row_count} rows as audience {audience.name!r}.")

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
    cap = st.number_input("Row cap", min_value=1, value=500_000, step=1000, key="sql_cap")
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
                report = sort_rows(
                    sources.as_parsed_file(result, source="SQL query", email_column=None),
                    test_environment=ws.settings.test_environment,
                )
                audience = services.import_audience(
                    ws, report.audience_file(), name=sql_audience, actor=ui.actor()
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.success(
                    f"Imported {audience.row_count} rows as audience {audience.name!r} "
                    f"({len(report.rejected)} rejected, {len(report.duplicates)} duplicates)."
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

with list_tab:
    stored = services.list_audiences(ws)
    if not stored:
        st.info("No audience yet: upload a file in the first tab.")
    else:
        st.dataframe(
            pd.DataFrame(
                [(a.name, a.source, a.row_count, a.email_column) for a in stored],
                columns=["name", "source", "rows", "email column"],
            ),
            hide_index=True,
        )
