"""The Templates page under AppTest: edit, variables, warnings, preview, versions, test send."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.workspace import Workspace
from outreach_core.services.demo import DEMO_TEMPLATE
from tests.e2e.dashboard import HOME, Demo, open_test_workspace


def open_page() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/templates.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Templates"
    return at


def literal(value: str) -> str:
    """A box's text as the browser shows it: the backslash escapes of `ui.plain` removed."""
    return re.sub(r"\\(.)", r"\1", value)


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def plain_text(at: AppTest) -> list[str]:
    """What the page draws with st.text (never interpreted as markdown)."""
    return [t.value for t in at.text]


def render_error_shown(at: AppTest, message: str) -> bool:
    """The preview says the row would be skipped and shows `message` in a plain code block."""
    return any("would be skipped: render_error" in e.value for e in at.error) and any(
        message in c.value for c in at.code
    )


def test_demo_template_shows_its_parts_variables_and_warnings(demo: Demo) -> None:
    """Verify the page opens on the demo template: editor filled, its column variables listed,
    the missing unsubscribe link warned about, row 1 previewed."""
    at = open_page()

    assert at.text_input(key="tpl_name").value == DEMO_TEMPLATE
    assert at.text_input(key="tpl_subject").value.startswith("{{ first_name }}, your seat")
    assert "{{ company }}" in at.text_area(key="tpl_html").value
    assert "Columns: `city`, `company`, `first_name`" in markdown(at)
    assert [literal(w.value) for w in at.warning] == [
        "no unsubscribe link: add a link whose address contains 'unsubscribe'"
    ]
    assert "Ada, your seat at the spring workshop in Lisbon" in plain_text(at)


def test_edit_shows_new_variables_and_warnings_before_saving(demo: Demo) -> None:
    """Verify an edit is inspected at once: a new variable that is no column is flagged,
    http links, images without alt and a long subject are warned about."""
    at = open_page()

    at.text_input(key="tpl_subject").set_value("x" * 79 + " {{ first_name }} {{ team }}")
    at.text_area(key="tpl_text").set_value("")
    at.text_area(key="tpl_html").set_value(
        '<p>{{ first_name }} <img src="https://example.com/a.png">'
        '<a href="http://example.com/unsubscribe">stop</a></p>'
    ).run()

    assert not at.exception
    assert "Columns: `first_name`, `team`" in markdown(at)
    assert any("Not a column of this audience: `team`" in e.value for e in at.error)
    # no row renders (no `team` column): no rendered subject to measure, no length warning
    assert [literal(w.value) for w in at.warning] == [
        "image https://example.com/a.png has no alt text",
        "http://example.com/unsubscribe is plain http://, use https",
        "no text part: one is derived from the HTML",
    ]


def test_syntax_error_is_shown_with_part_line_and_column(demo: Demo) -> None:
    """Verify a template that does not compile shows the error, not a traceback."""
    at = open_page()

    at.text_area(key="tpl_text").set_value("Hi\n{{ first_name }\n").run()

    assert not at.exception
    assert any(c.value.startswith("text: line 2, column 1: ") for c in at.code)
    assert any("does not compile" in e.value for e in at.error)


def test_escape_attempt_is_refused_on_save(demo: Demo) -> None:
    """Verify saving a sandbox-escape payload is refused and creates no version."""
    at = open_page()

    at.text_area(key="tpl_text").set_value("{{ cycler.__init__.__globals__ }}").run()
    at.button[0].click().run()

    assert any("not allowed in a template" in e.value for e in at.error)
    assert len(services.template_versions(demo.ws, demo.workflow.template_id)) == 1


def test_preview_row_by_position_and_by_email_search(demo: Demo) -> None:
    """Verify choosing row 5, then searching an address, previews that row with its values;
    a row that does not render shows its render_error."""
    rows = services.audience_rows(demo.ws, services.list_audiences(demo.ws)[0].id)
    at = open_page()

    at.number_input(key="preview_row").set_value(5).run()

    number, values = rows[4]
    assert f"**Row {number}**" in markdown(at)
    assert values["email"] in plain_text(at)
    assert any(t.startswith(f"{values['first_name']}, your seat") for t in plain_text(at))
    table = at.dataframe[0].value
    assert dict(zip(table["Column"], table["Value"], strict=True))["city"] == values["city"]

    target_number, target = rows[20]
    at.text_input(key="preview_email").set_value(target["email"].split("@")[0]).run()
    assert f"**Row {target_number}**" in markdown(at)
    assert target["email"] in plain_text(at)

    at.text_input(key="preview_email").set_value("").run()
    at.text_area(key="tpl_text").set_value("Hi {{ nickname }}").run()
    assert render_error_shown(at, "text: 'nickname' is undefined")


def test_saved_change_creates_a_version_and_the_diff_shows_it(demo: Demo) -> None:
    """Verify Save makes version 2, saving again unchanged makes none, and the diff between
    v1 and v2 shows the changed subject line."""
    at = open_page()
    old_subject = at.text_input(key="tpl_subject").value

    at.text_input(key="tpl_subject").set_value("Spring workshop in {{ city }}").run()
    at.button[0].click().run()

    assert at.success[0].value == f"Saved {DEMO_TEMPLATE} version 2."
    versions = services.template_versions(demo.ws, demo.workflow.template_id)
    assert [v.version for v in versions] == [2, 1]
    assert at.selectbox(key="diff_from").value == 1
    assert at.selectbox(key="diff_to").value == 2
    diff = next(c.value for c in at.code if c.language == "diff")
    assert "--- v1/subject.txt" in diff and "+++ v2/subject.txt" in diff
    assert f"-{old_subject}" in diff
    assert "+Spring workshop in {{ city }}" in diff
    assert "body.html" not in diff  # unchanged parts do not appear

    at.button[0].click().run()

    assert [i.value for i in at.info][-1] == "No change: nothing saved."
    assert len(services.template_versions(demo.ws, demo.workflow.template_id)) == 2


def test_html_only_template_previews_a_derived_text_part(demo: Demo) -> None:
    """Verify clearing the text part previews a text part derived from the HTML."""
    at = open_page()

    at.text_area(key="tpl_text").set_value("").run()

    assert "Text part (derived from the HTML)" in [c.value for c in at.caption]
    text = next(c.value for c in at.code if c.language == "plaintext")
    assert "Hello Ada," in text and "<p>" not in text


def test_test_send_goes_through_the_ledger_as_a_test_run(demo: Demo, data_dir: Path) -> None:
    """Verify a test send delivers one message to the typed address through the chosen engine
    (the demo outbox) and is recorded as a run with trigger test."""
    at = open_page()

    at.text_input(key="test_to").set_value("me@example.org")
    at.button(key="FormSubmitter:test_send-Send test of version 1").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.success[-1].value.startswith("Test run ")
    runs = services.recent_runs(demo.ws)
    assert [(r.run.trigger, r.counts.sent, r.counts.total) for r in runs] == [("test", 1, 1)]
    messages = list((data_dir / "outbox").rglob("*.eml"))
    assert len(messages) == 1
    assert "To: me@example.org" in messages[0].read_text()


def test_export_zip_holds_the_folder_format(demo: Demo) -> None:
    """Verify the export button offers subject.txt, body.html and body.txt as a zip."""
    at = open_page()

    (button,) = at.download_button
    assert button.label == f"Export {DEMO_TEMPLATE} v1 (.zip)"


def test_zip_round_trip_of_the_folder_format() -> None:
    """Verify template_zip writes the three files source_from_files reads back."""
    from outreach_core.domain.template_tools import source_from_files, template_zip
    from outreach_core.domain.templating import TemplateSource

    source = TemplateSource("Hi {{ a }}", "<p>{{ a }}</p>", "{{ a }}\n")
    with zipfile.ZipFile(io.BytesIO(template_zip(source))) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    assert sorted(files) == ["body.html", "body.txt", "subject.txt"]
    assert source_from_files(files) == source


def test_empty_workspace_can_write_and_save_a_first_template(data_dir: Path) -> None:
    """Verify the page works with nothing saved yet: no preview without an audience, and a
    new template saved from the editor becomes version 1 and is then selected."""
    at = open_page()
    assert at.selectbox(key="template_id").value == 0
    assert any("Import an audience to preview" in i.value for i in at.info)

    at.text_input(key="tpl_name").set_value("Welcome")
    at.text_input(key="tpl_subject").set_value("Welcome {{ first_name }}")
    at.text_area(key="tpl_text").set_value("Hi {{ first_name }}\n")
    at.button[0].click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == "Saved Welcome version 1."
    ws: Workspace = open_test_workspace(data_dir)
    try:
        (saved,) = services.list_templates(ws)
    finally:
        ws.close()
    assert (saved.name, saved.version, saved.text) == ("Welcome", 1, "Hi {{ first_name }}\n")
    assert at.selectbox(key="template_id").value == saved.id


def test_preview_fills_unsubscribe_url_from_the_base_url_typed(demo: Demo) -> None:
    """Verify a template using `{{ unsubscribe_url }}` previews as a render error until a base
    URL is given, then shows that URL with the row's address and a token."""
    at = open_page()
    at.text_area(key="tpl_text").set_value("Bye: {{ unsubscribe_url }}").run()
    assert render_error_shown(at, "'unsubscribe_url' is undefined")

    at.text_input(key="preview_unsubscribe").set_value("https://example.com/u").run()

    assert not at.exception
    text = next(c.value for c in at.code if c.language == "plaintext")
    assert text.startswith("Bye: https://example.com/u?email=ada.lovelace0%40example.com&token=")
