"""Templates: list, edit the three parts, variables and warnings, preview a row, test send,
versions with a diff, import and export of the folder format."""

from datetime import UTC, datetime

import streamlit as st

from outreach_core import OutreachError, services, ui
from outreach_core.domain import template_tools
from outreach_core.domain.planning import SenderIdentity
from outreach_core.domain.templating import BUILTINS
from outreach_core.services import audiences as audience_service

NEW = 0

ws = ui.workspace()
today = datetime.now(UTC)
st.title("Templates")
st.caption(
    "What recipients read: subject, HTML and text with variables from the audience, previewed "
    "row by row, test-sent, versioned."
)

templates = {t.id: t for t in services.list_templates(ws)}


def load_editor() -> None:
    """Fill the editor from the chosen template (or empty it for a new one)."""
    chosen = templates.get(st.session_state["template_id"])
    st.session_state["tpl_name"] = chosen.name if chosen else ""
    st.session_state["tpl_subject"] = chosen.subject if chosen else ""
    st.session_state["tpl_html"] = (chosen.html or "") if chosen else ""
    st.session_state["tpl_text"] = (chosen.text or "") if chosen else ""
    st.session_state["loaded_version"] = chosen.version_id if chosen else None
    reset_diff()


def reset_diff() -> None:
    """Compare the two newest versions again (after a switch or a save)."""
    st.session_state.pop("diff_from", None)
    st.session_state.pop("diff_to", None)


def save() -> None:
    if not ui.require_role("sender"):
        return
    source = template_tools.source_from_editor(
        st.session_state["tpl_subject"], st.session_state["tpl_html"], st.session_state["tpl_text"]
    )
    name = st.session_state["tpl_name"].strip()
    try:
        if not name:
            raise OutreachError("give the template a name")
        saved = services.save_template(ws, name, source, actor=ui.actor())
    except OutreachError as exc:
        st.session_state["tpl_feedback"] = ("error", str(exc))
        return
    same = saved.version_id == st.session_state.get("loaded_version")
    st.session_state["tpl_feedback"] = (
        "info" if same else "success",
        "No change: nothing saved." if same else f"Saved {saved.name} version {saved.version}.",
    )
    st.session_state["template_id"] = saved.id
    st.session_state["loaded_version"] = saved.version_id
    reset_diff()


ids = [NEW, *templates]
if st.session_state.get("template_id") not in ids:
    st.session_state["template_id"] = ids[1] if templates else NEW
    load_editor()
st.selectbox(
    "Template",
    options=ids,
    format_func=lambda i: (
        "New template…" if i == NEW else f"{templates[i].name} (v{templates[i].version})"
    ),
    key="template_id",
    on_change=load_editor,
)
current = templates.get(st.session_state["template_id"])
if "tpl_subject" not in st.session_state:
    load_editor()

editor, side = st.columns([3, 2], gap="large")
with editor:
    st.text_input("Name", key="tpl_name")
    st.text_input("Subject", key="tpl_subject")
    st.text_area("HTML part", key="tpl_html", height=220, help="leave empty for text only")
    st.text_area(
        "Text part", key="tpl_text", height=160, help="leave empty to derive it from the HTML"
    )
    st.button("Save", type="primary", on_click=save, icon=":material/save:")
    feedback = st.session_state.pop("tpl_feedback", None)
    if feedback:
        kind, message = feedback
        # an error may quote template code (`__mro__`): shown as text, never as markdown
        ui.error_text(message) if kind == "error" else getattr(st, kind)(message)

source = template_tools.source_from_editor(
    st.session_state["tpl_subject"], st.session_state["tpl_html"], st.session_state["tpl_text"]
)
audiences = {a.id: a for a in services.list_audiences(ws)}
with side:
    st.subheader("Audience for the preview")
    audience_id = st.selectbox(
        "Audience",
        options=list(audiences),
        format_func=lambda i: f"{audiences[i].name} ({audiences[i].row_count} rows)",
        key="preview_audience",
        placeholder="no audience yet",
    )
    audience = audiences.get(audience_id) if audience_id is not None else None
    # the first rows only (what the subject-length warning measures); the previewed row is
    # read on its own below
    rows = (
        audience_service.first_rows(ws, audience.id, template_tools.SUBJECT_ROWS)
        if audience
        else []
    )
    engines = {e.id: e for e in services.list_engines(ws)}
    first_engine = next(iter(engines.values()), None)
    sender = SenderIdentity(
        first_engine.from_email if first_engine else "you@example.com",
        first_engine.from_name if first_engine else "",
    )
    # the subject-length warning measures what the preview rows' subjects render to
    subjects = (
        template_tools.rendered_subjects(
            source, rows, email_column=audience.email_column, sender=sender, run_date=today
        )
        if audience
        else None
    )
    report = template_tools.inspect_template(
        source, audience.columns if audience else None, subjects=subjects
    )
    st.subheader("Variables")
    if report.error:
        # as text: a sandbox message quotes code (`__mro__` would turn bold as markdown)
        st.error("The template does not compile:", icon=":material/error:")
        st.code(report.error, language=None, wrap_lines=True)
    else:
        st.markdown(
            "Columns: "
            + (", ".join(f"`{v}`" for v in report.variables) or "none")
            + (
                "  \nOptional (`| default`): " + ", ".join(f"`{v}`" for v in report.optional)
                if report.optional
                else ""
            )
        )
        if report.missing_columns:
            st.error(
                "Not a column of this audience: "
                + ", ".join(f"`{v}`" for v in report.missing_columns)
                + ". Every row would fail to render."
            )
    with st.expander("Built-ins every template may use"):
        st.markdown("\n".join(f"- `{name}`: {meaning}" for name, meaning in BUILTINS.items()))
        st.caption("An empty cell counts as missing unless the template gives `| default('…')`.")
    st.subheader(f"Warnings ({len(report.warnings)})")
    for warning in report.warnings:
        st.warning(ui.plain(warning.message), icon=":material/warning:")
    if not report.warnings:
        st.success("No content warnings.")

st.divider()
st.header("Preview")
if audience is None:
    st.info("Import an audience to preview a row (the send command imports one).")
else:
    pick, search = st.columns(2)
    position = pick.number_input(
        "Row",
        min_value=1,
        max_value=max(audience.row_count, 1),
        value=1,
        step=1,
        key="preview_row",
    )
    needle = search.text_input(
        "…or find by email", key="preview_email", placeholder="part of an address"
    )
    row = audience_service.find_preview_row(
        ws, audience.id, audience.email_column, position=int(position), email_search=needle
    )
    unsubscribe = None
    if "unsubscribe_url" in report.builtins:
        base_url = st.text_input(
            "Unsubscribe base URL for the preview",
            key="preview_unsubscribe",
            placeholder="https://example.com/unsubscribe",
            help="a run takes it from its workflow (send --unsubscribe-url)",
        )
        try:
            unsubscribe = services.unsubscribe_links(ws, base_url) if base_url else None
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
    if row is None:
        st.warning(ui.plain(f"No row's address contains {needle!r}."))
    elif report.error is not None:
        st.info(
            "No preview: the template does not compile (the error is under **Variables** "
            "above). Fix it and the preview comes back.",
            icon=":material/visibility_off:",
        )
    else:
        preview = template_tools.preview_row(
            source,
            row,
            email_column=audience.email_column,
            sender=sender,
            run_date=today,
            unsubscribe=unsubscribe,
        )
        values, message = st.columns([1, 2], gap="large")
        # Contact values never pass through markdown (a cell could hold a link or a remote
        # image): the address and subject are drawn as plain text, the HTML in a sandbox.
        values.markdown(f"**Row {preview.row_number}**")
        values.text(preview.email or "(no address)")
        values.dataframe(ui.row_frame(preview.variables), hide_index=True)
        with message:
            if preview.rendered is None:
                st.error(f"Row {preview.row_number} would be skipped: render_error")
                st.code(preview.error or "", language=None, wrap_lines=True)
            else:
                st.caption("Subject")
                st.text(preview.rendered.subject)
                if preview.rendered.html is not None:
                    st.iframe(ui.sandboxed_frame(preview.rendered.html), height=440)
                label = (
                    "Text part (derived from the HTML)"
                    if preview.rendered.text_derived
                    else "Text part"
                )
                st.caption(label)
                st.code(preview.rendered.text or "", language=None, wrap_lines=True)

    st.subheader("Test send")
    if current is None or not engines:
        st.caption("Save the template and configure an engine to send a test.")
    else:
        with st.form("test_send"):
            to = st.text_input("Send a test to", key="test_to", placeholder="you@example.com")
            engine_id = st.selectbox(
                "Engine",
                options=list(engines),
                format_func=lambda i: engines[i].name,
                key="test_engine",
            )
            sent = st.form_submit_button(
                f"Send test of version {current.version}", icon=":material/send:"
            )
        if sent and row is not None and ui.require_role("sender"):
            try:
                summary = services.send_test_message(
                    ws,
                    template_id=current.id,
                    engine_id=engine_id,
                    to=to,
                    variables=row[1],
                    email_column=audience.email_column,
                    actor=ui.actor(),
                )
            except OutreachError as exc:
                st.error(ui.plain(str(exc)))
            else:
                st.success(f"Test run {summary.run.id}: {summary.run.status} · {summary.counts}")

if current is not None:
    st.divider()
    st.header("Versions")
    versions = services.template_versions(ws, current.id)
    st.dataframe(ui.versions_frame(versions), hide_index=True)
    numbers = {v.version: v for v in versions}
    if len(numbers) == 1:
        st.caption(f"Only version {current.version} so far: saving a change makes a new version.")
    else:
        older, newer = st.columns(2)
        a = older.selectbox("From version", options=list(numbers), index=1, key="diff_from")
        b = newer.selectbox("To version", options=list(numbers), index=0, key="diff_to")
        diff = template_tools.diff_versions(numbers[a], numbers[b])
        if diff:
            st.code(diff, language="diff")
        else:
            st.caption(f"Versions {a} and {b} are the same.")

st.divider()
st.header("Files")
upload, export = st.columns(2)
with upload:
    files = st.file_uploader(
        "Import subject.txt, body.html, body.txt",
        type=["txt", "html"],
        accept_multiple_files=True,
        key="import_files",
    )
    import_name = st.text_input("Save the import as", key="import_name")
    if st.button("Import", disabled=not files, icon=":material/upload:") and ui.require_role(
        "sender"
    ):
        try:
            imported = template_tools.source_from_files({f.name: f.getvalue() for f in files})
            if not import_name.strip():
                raise OutreachError("give the imported template a name")
            saved = services.save_template(ws, import_name.strip(), imported, actor=ui.actor())
        except OutreachError as exc:
            st.error(ui.plain(str(exc)))
        else:
            st.success(f"Imported {saved.name} version {saved.version}.")
with export:
    if current is not None:
        st.download_button(
            f"Export {current.name} v{current.version} (.zip)",
            data=template_tools.template_zip(template_tools.source_of(current)),
            file_name=f"{current.name}.zip",
            mime="application/zip",
            icon=":material/download:",
        )
