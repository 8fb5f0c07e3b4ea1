"""One pre-flight everywhere, under AppTest and the CLI: the Dry run page, the Send page,
Home's confirmation and `dry-run` show the counts of `preflight.workflow_preflight` (dedupe
window, suppressions, render check and the workflow's DNS option included); the missing
template variable is named at save and at Send; every option of the run is on the workflow
form with its help and default; errors quoting template code stay text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.domain.forms import FIELDS, WORKFLOW_HELP
from outreach_core.domain.preflight_findings import PreflightCounts
from outreach_core.services import preflight
from tests.e2e.dashboard import HOME, free_port, open_test_workspace
from tests.e2e.preflight_seed import MIXED_COUNTS, Seeded, seed

from conftest import run_cli

CITY_WARNING = (
    "the template uses `city`; the audience has no such column: add a default "
    "`{{ city | default('…') }}` or choose another audience"
)


def literal(value: str) -> str:
    """A box's text as the browser shows it: the backslash escapes of `ui.plain` removed."""
    return re.sub(r"\\(.)", r"\1", value)


@pytest.fixture
def seeded(data_dir: Path) -> Seeded:
    return seed(data_dir)


def start(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> list[tuple[str, int]]:
    """The pre-flight's metrics: those drawn before the Progress section's run metrics."""
    found = [(m.label, int(m.value)) for m in at.metric]
    return found[: next((i for i, (label, _) in enumerate(found) if label == "Sent"), None)]


def the_counts(data: Path, workflow_id: int) -> PreflightCounts:
    ws = open_test_workspace(data)
    try:
        return preflight.workflow_preflight(ws, workflow_id).counts
    finally:
        ws.close()


def test_dry_run_send_and_cli_show_the_counts_of_the_one_preflight(
    seeded: Seeded, data_dir: Path, tmp_path: Path
) -> None:
    """Verify the Mixed workflow's counts (valid, invalid, duplicate, suppressed, render error,
    sent within the dedupe window) are the same object on the Dry run page, the Send page and
    in `dry-run`'s summary line, and that they are the expected ones."""
    counts = the_counts(data_dir, seeded.mixed)
    assert {k: v for k, v in counts.by_status.items() if v} == MIXED_COUNTS

    send = start("pages/send.py")
    send.selectbox(key="send_page_workflow").set_value(seeded.mixed).run()
    assert metrics(send) == counts.shown()
    dry = start("pages/dry_run.py")
    dry.selectbox(key="dry_target").set_value("Workflow: Mixed").run()
    assert not dry.checkbox  # a workflow is checked with its own options: no DNS toggle
    dry.button(key="dry_run").click().run()
    assert not dry.exception, [e.value for e in dry.exception]
    assert metrics(dry) == counts.shown()

    out = tmp_path / "dry.csv"
    done = run_cli(tmp_path, "dry-run", "Mixed", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"{counts.total} rows: {counts.line()}" in done.stdout.splitlines()
    assert "DNS check: skipped" in done.stdout  # the workflow's option, as on the pages
    assert "would send to 2 recipients" in done.stdout
    assert "1 recipient was already sent by this workflow within its dedupe window" in (done.stdout)


def test_send_names_the_dedupe_skips_and_the_render_error_rows_before_confirming(
    seeded: Seeded,
) -> None:
    """Verify the Send page says how many the dedupe window skips, opens the render_error rows
    with the variable that is missing, and confirms the count left (2)."""
    at = start("pages/send.py")
    at.selectbox(key="send_page_workflow").set_value(seeded.mixed).run()

    warnings = [literal(w.value) for w in at.warning]
    assert (
        "1 recipient was already sent by this workflow within its dedupe window (24 h) and "
        "will be skipped." in warnings
    )
    assert at.checkbox(key="send_confirm").label == "I confirm sending to 2 recipients"
    [render_rows] = [e for e in at.expander if e.label.startswith("render_error: 1 row")]
    [table] = render_rows.dataframe
    [row] = table.value.to_dict("records")
    assert (row["Row"], row["Email"]) == (6, "cat@example.com")
    assert "'first_name' is undefined" in row["Reason"]
    [recent] = [e for e in at.expander if e.label.startswith("sent_recently")]
    assert "run 1 of this workflow sent to it within 24 h" in recent.dataframe[0].value.iloc[0, 2]


def test_second_send_within_the_window_has_nothing_to_confirm(seeded: Seeded) -> None:
    """Verify a workflow whose 15 recipients were all just sent says so and offers no send."""
    at = start("pages/send.py")
    at.selectbox(key="send_page_workflow").set_value(seeded.weekly).run()

    warnings = [literal(w.value) for w in at.warning]
    assert any(w.startswith("15 recipients were already sent by this workflow") for w in warnings)
    assert any("every recipient was sent to within the dedupe window" in w for w in warnings)
    assert not at.checkbox and not [b for b in at.button if b.key == "send_now"]


def test_saving_a_workflow_names_the_variable_its_audience_lacks(
    seeded: Seeded, data_dir: Path
) -> None:
    """Verify saving a workflow whose template uses `city` (no such column) is saved with the
    warning naming the variable and the fix, and the Send page repeats it."""
    ws = open_test_workspace(data_dir)
    try:
        audiences = {a.name: a.id for a in services.list_audiences(ws)}
        templates = {t.name: t.id for t in services.list_templates(ws)}
        engines = {e.name: e.id for e in services.list_engines(ws)}
    finally:
        ws.close()
    at = start("pages/workflows.py")
    assert not [w for w in at.warning if "city" in w.value]
    at.text_input(key="wf_name").set_value("City news")
    at.selectbox(key="wf_audience_id").set_value(audiences["Contacts"])
    at.selectbox(key="wf_template_id").set_value(templates["City note"])
    at.multiselect(key="wf_engine_ids").set_value([engines["Outbox"]])
    at.checkbox(key="wf_skip_mx").check()
    at.button(key="FormSubmitter:workflow_form-Create workflow").click().run()
    assert not at.exception, [e.value for e in at.exception]

    assert any("Workflow **City news** created" in s.value for s in at.success)
    assert any(CITY_WARNING in w.value for w in at.warning), [w.value for w in at.warning]
    ws = open_test_workspace(data_dir)
    try:
        saved = services.find_workflow(ws, "City news")
    finally:
        ws.close()
    assert saved.options.skip_mx

    send = start("pages/send.py")
    send.selectbox(key="send_page_workflow").set_value(saved.id).run()
    assert any(CITY_WARNING in w.value for w in send.warning)
    [rows] = [e for e in send.expander if e.label.startswith("render_error: 15 rows")]
    assert "'city' is undefined" in rows.dataframe[0].value.iloc[0, 2]


def test_every_run_option_is_on_the_form_with_help_and_default(seeded: Seeded) -> None:
    """Verify the form has a widget for each option the CLI and the run know, each with a help
    text that names its default."""
    at = start("pages/workflows.py")
    options = [f for f in FIELDS if f not in ("name", "key", "audience_id", "template_id")]
    for needed in ("skip_mx", "dedupe_window_hours", "on_render_error", "retry_ambiguous_once",
                   "time_limit_minutes", "send_window", "timezone", "auto_pause_percent",
                   "report_recipients"):  # fmt: skip
        assert needed in options
    widgets = {
        w.key: w
        for kind in (at.checkbox, at.number_input, at.text_input, at.radio, at.selectbox)
        for w in kind
    }
    for field in options:
        if field == "engine_ids":
            continue
        widget = widgets[f"wf_{field}"]
        assert "Default" in WORKFLOW_HELP[field]
        assert widget.help == WORKFLOW_HELP[field], field


def test_template_code_in_an_error_stays_text_and_the_preview_says_why_it_is_blank(
    seeded: Seeded,
) -> None:
    """Verify a refused `__mro__` is shown as code (its underscores intact, nothing bold) and
    the preview explains why it shows no message."""
    at = start("pages/templates.py")
    at.text_area(key="tpl_text").set_value("{{ x.__mro__ }}").run()
    assert not at.exception

    assert any("'__mro__'" in c.value for c in at.code)
    assert not [m for m in at.markdown if "**mro**" in m.value or "__mro__" in m.value]
    assert any("No preview: the template does not compile" in i.value for i in at.info)


def test_without_dns_the_send_page_points_at_the_skip_option(
    seeded: Seeded, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify that where no nameserver answers, a workflow that checks DNS shows its rows as
    dns_error, nothing to confirm, and the way out: the workflow's Skip the DNS check."""
    monkeypatch.setenv("OUTREACH_DNS_NAMESERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("OUTREACH_DNS_TIMEOUT", "0.3")
    ws = open_test_workspace(data_dir)
    try:
        home = services.find_workflow(ws, "Home queue")
        services.update_workflow(
            ws, home.id, name=home.name, key=home.key, audience_id=home.audience_id,
            template_id=home.template_id, engine_ids=home.engine_ids,
            options=home.options.model_copy(update={"skip_mx": False}), actor="test",
        )  # fmt: skip
    finally:
        ws.close()
    at = start("pages/send.py")
    at.selectbox(key="send_page_workflow").set_value(seeded.home).run()

    assert metrics(at) == [("valid", 0), ("dns_error", 15)]
    assert any("tick **Skip the DNS check**" in i.value for i in at.info)
    assert any("Nothing to send: no valid recipient" in w.value for w in at.warning)
    assert not at.checkbox
