"""Content warnings, variables against columns, empty cells, row lookup and the folder format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from outreach_core.domain.models import RenderErrorPolicy
from outreach_core.domain.planning import SenderIdentity, plan_deliveries, render_abort_reason
from outreach_core.domain.template_checks import GMAIL_CLIP_BYTES, Check, content_warnings
from outreach_core.domain.template_tools import find_row, inspect_template, source_from_files
from outreach_core.domain.templating import (
    CompiledTemplate,
    TemplateSource,
    load_template_dir,
    write_template_dir,
)
from outreach_core.errors import TemplateError

GOOD_HTML = '<p>Hi <a href="https://example.com/unsubscribe?u={{ recipient.email }}">stop</a></p>'
SENDER = SenderIdentity("team@example.com", "Team")
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def checks(source: TemplateSource) -> list[Check]:
    return [w.check for w in content_warnings(source)]


def test_clean_template_has_no_warnings() -> None:
    """Verify a template with an unsubscribe link, alt texts, https and a text part passes."""
    assert checks(TemplateSource("Hello", GOOD_HTML, "Hi\n{{ unsubscribe_url }}")) == []


@pytest.mark.parametrize(
    "source, expected",
    [
        (TemplateSource("Hello", "<p>Hi</p>", "Hi"), [Check.NO_UNSUBSCRIBE]),
        (TemplateSource("Hello", None, "Hi {{ unsubscribe_url }}"), []),
        (
            TemplateSource("Hello", GOOD_HTML + "x" * GMAIL_CLIP_BYTES, "t"),
            [Check.HTML_TOO_LARGE],
        ),
        (
            TemplateSource("Hello", GOOD_HTML + '<img src="https://e.com/a.png">', "t"),
            [Check.IMAGE_WITHOUT_ALT],
        ),
        (
            TemplateSource("Hello", GOOD_HTML + '<img alt="" src="https://e.com/a.png">', "t"),
            [],  # an empty alt is the right thing for a decorative image
        ),
        (
            TemplateSource("Hello", GOOD_HTML + '<a href="http://e.com">e</a>', "t"),
            [Check.PLAIN_HTTP_LINK],
        ),
        (TemplateSource("Hello", GOOD_HTML, None), [Check.NO_TEXT_PART]),
        (TemplateSource("x" * 79, GOOD_HTML, "t"), [Check.SUBJECT_TOO_LONG]),
        (TemplateSource("x" * 78, GOOD_HTML, "t"), []),  # 78 is still fine
        (TemplateSource("  ", GOOD_HTML, "t"), [Check.SUBJECT_EMPTY]),
    ],
    ids=[
        "no-unsubscribe",
        "unsubscribe-variable",
        "html-over-102kb",
        "img-without-alt",
        "img-empty-alt",
        "http-link",
        "no-text",
        "subject-79",
        "subject-78",
        "subject-empty",
    ],
)
def test_each_content_check_fires_on_its_case_only(
    source: TemplateSource, expected: list[Check]
) -> None:
    """Verify each warning fires on its own case and not on its neighbour's."""
    assert checks(source) == expected


def test_empty_cell_is_missing_unless_the_template_gives_a_default() -> None:
    """Verify an empty value renders as undefined: an error for `{{ company }}`, the default
    for `{{ title | default('friend') }}`."""
    template = CompiledTemplate(TemplateSource("Hi", None, "{{ title | default('friend') }}"))
    rows = [(1, {"email": "a@example.com", "title": ""})]
    (planned,) = plan_deliveries(
        rows, email_column="email", template=template, sender=SENDER, run_date=NOW
    )
    assert planned.reason is None

    strict = CompiledTemplate(TemplateSource("Hi", None, "{{ company }}"))
    rows = [(1, {"email": "a@example.com", "company": ""})]
    (planned,) = plan_deliveries(
        rows, email_column="email", template=strict, sender=SENDER, run_date=NOW
    )
    assert planned.reason == "render_error: text: 'company' is undefined"


def test_abort_reason_names_every_failing_row_and_skip_gives_none() -> None:
    """Verify the abort decision: None under skip or without render errors; under abort a
    sentence naming each failing row."""
    template = CompiledTemplate(TemplateSource("Hi", None, "{{ company }}"))
    rows = [
        (n, {"email": f"p{n}@example.com", "company": "" if n in (3, 7) else "C"})
        for n in range(1, 9)
    ]
    plan = list(
        plan_deliveries(rows, email_column="email", template=template, sender=SENDER, run_date=NOW)
    )
    assert render_abort_reason(plan, RenderErrorPolicy.SKIP) is None
    assert render_abort_reason(plan[:2], RenderErrorPolicy.ABORT) is None
    reason = render_abort_reason(plan, RenderErrorPolicy.ABORT)
    assert reason == (
        "on-render-error abort: 2 rows do not render, nothing was sent: "
        "row 3: render_error: text: 'company' is undefined; "
        "row 7: render_error: text: 'company' is undefined"
    )


def test_variables_split_into_columns_optional_and_builtins_and_missing_columns() -> None:
    """Verify the report lists column variables, the optional ones, the built-ins used and the
    required variables the audience lacks."""
    source = TemplateSource(
        "{{ first_name }} at {{ company }}",
        None,
        "{{ nickname | default(first_name) }} {{ recipient.email }} {{ sender_name }} {{ today }}",
    )
    report = inspect_template(source, ["email", "first_name"])
    assert report.error is None
    assert report.variables == ["company", "first_name", "nickname"]
    assert report.optional == ["nickname"]
    assert report.builtins == ["recipient", "sender_name", "today"]
    assert report.missing_columns == ["company"]


def test_find_row_by_position_or_email_search() -> None:
    """Verify a row is found by 1-based position, or by a case-insensitive part of its email;
    None when out of range or nothing matches."""
    rows = [(n, {"Email": f"Person{n}@Example.com"}) for n in range(1, 6)]
    assert find_row(rows, email_column="Email", position=3) == rows[2]
    assert find_row(rows, email_column="Email", position=6) is None
    assert find_row(rows, email_column="Email", position=1, email_search="person4@") == rows[3]
    assert find_row(rows, email_column="Email", position=1, email_search="nobody") is None


def test_folder_round_trip_and_missing_part_removed(tmp_path: Path) -> None:
    """Verify write_template_dir writes what load_template_dir reads, and a part the template
    lacks is removed from the folder."""
    source = TemplateSource("Hi {{ a }}", "<p>{{ a }}</p>", "{{ a }}\n")
    write_template_dir(source, tmp_path)
    assert load_template_dir(tmp_path) == source

    html_only = TemplateSource("Hi", "<p>x</p>", None)
    write_template_dir(html_only, tmp_path)
    assert load_template_dir(tmp_path) == html_only
    assert not (tmp_path / "body.txt").exists()


def test_uploaded_files_are_checked_by_name() -> None:
    """Verify an upload without a subject, or with an unknown file, names the problem."""
    with pytest.raises(TemplateError, match=r"subject\.txt is missing"):
        source_from_files({"body.txt": b"x"})
    with pytest.raises(TemplateError, match=r"unexpected file notes\.md"):
        source_from_files({"subject.txt": b"s", "notes.md": b"x"})
