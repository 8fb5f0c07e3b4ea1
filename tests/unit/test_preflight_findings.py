"""The pre-flight's findings without servers: counts per status, the variables a template
needs that an audience lacks, the dedupe sentence, the subject length of rendered subjects,
and error text that markdown cannot touch."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from outreach_core.domain.address_checks import ROW_STATUSES
from outreach_core.domain.planning import SenderIdentity
from outreach_core.domain.preflight_findings import (
    MissingVariable,
    count_statuses,
    dedupe_sentence,
    missing_variables,
)
from outreach_core.domain.template_checks import Check, content_warnings, longest_subject
from outreach_core.domain.template_tools import inspect_template, rendered_subjects
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.ui.views import plain

SENDER = SenderIdentity("team@example.com", "Team")
DAY = datetime(2026, 3, 2, tzinfo=UTC)
#: 87 characters as written, 51 once rendered for the rows below
LONG_SOURCE = (
    "{{ first_name | default('there') }}, {{ company | default('your company') }}: the news!"
)


def test_counts_list_every_status_valid_first_then_those_with_rows() -> None:
    """Verify every status is counted (0 when absent), `shown` puts valid first and keeps only
    statuses with rows, and the CLI line lists them in the table's order."""
    counts = count_statuses(["duplicate", "valid", "sent_recently", "valid", "render_error"])
    assert set(counts.by_status) == set(ROW_STATUSES)
    assert (counts.total, counts.valid, counts.sent_recently) == (5, 2, 1)
    assert counts.shown() == [
        ("valid", 2),
        ("duplicate", 1),
        ("render_error", 1),
        ("sent_recently", 1),
    ]
    assert counts.line() == "valid=2 duplicate=1 render_error=1 sent_recently=1"
    assert count_statuses([]).shown() == [("valid", 0)]
    assert count_statuses([]).line() == "none"
    with pytest.raises(ValueError, match="not a pre-flight status: sent"):
        count_statuses(["sent"])


def test_missing_variables_are_the_required_ones_no_column_holds() -> None:
    """Verify a variable with a default, a built-in and a present column are not missing, and
    the message names the variable and both ways out."""
    template = CompiledTemplate(
        TemplateSource(
            "Hi {{ first_name }} from {{ sender_name }}",
            None,
            "{{ city }} {{ zip }} {{ nickname | default('friend') }} {{ recipient.email }}",
        )
    )
    found = missing_variables(template, ["email", "first_name", "zip"])
    assert found == [MissingVariable("city")]
    assert found[0].message == (
        "the template uses `city`; the audience has no such column: add a default "
        "`{{ city | default('…') }}` or choose another audience"
    )
    assert missing_variables(template, ["city", "first_name", "zip"]) == []


def test_dedupe_sentence_counts_and_names_the_window() -> None:
    assert dedupe_sentence(0, 24) is None
    assert dedupe_sentence(1, 24) == (
        "1 recipient was already sent by this workflow within its dedupe window (24 h) and "
        "will be skipped."
    )
    assert dedupe_sentence(23, 1.5) == (
        "23 recipients were already sent by this workflow within its dedupe window (1.5 h) "
        "and will be skipped."
    )


def rows(*names: tuple[str, str]) -> list[tuple[int, dict[str, str]]]:
    return [
        (n, {"email": f"r{n}@example.com", "first_name": first, "company": company})
        for n, (first, company) in enumerate(names, start=1)
    ]


def test_subject_length_is_measured_on_the_rendered_subjects_not_the_source() -> None:
    """Verify an 87-character templated subject that renders to at most 51 characters gets no
    warning, while one row rendering past 78 is named with its length and row."""
    source = TemplateSource(LONG_SOURCE, None, "Hello")
    assert len(LONG_SOURCE) == 87
    short = rendered_subjects(
        source,
        rows(("Ann", "Acme"), ("Bartholomew", "Globex Corporation Internat")),
        email_column="email",
        sender=SENDER,
        run_date=DAY,
    )
    assert short is not None
    assert [len(s) for _, s in short] == [20, 51]
    assert Check.SUBJECT_TOO_LONG not in [w.check for w in content_warnings(source)]
    report = inspect_template(source, ["email", "first_name", "company"], subjects=short)
    assert Check.SUBJECT_TOO_LONG not in [w.check for w in report.warnings]

    long = rendered_subjects(
        source,
        rows(("Ann", "Acme"), ("Ann", "A" * 80), ("Bo", "")),
        email_column="email",
        sender=SENDER,
        run_date=DAY,
    )
    [warning] = [
        w for w in content_warnings(source, rendered_subjects=long) if w.check.startswith("subject")
    ]
    assert warning.message == (
        "the subject renders to 96 characters (row 2, the longest of 3 rows previewed); "
        "keep it under 78"
    )


def test_subject_source_is_measured_only_when_it_has_no_tags() -> None:
    """Verify a plain 79-character subject is warned about without rows (it renders as
    written), and a templated one is not judged by its source."""
    plain_subject = TemplateSource("x" * 79, None, "t")
    assert [w.check for w in content_warnings(plain_subject)] == [
        Check.NO_UNSUBSCRIBE,
        Check.SUBJECT_TOO_LONG,
    ]
    templated = TemplateSource("x" * 79 + "{{ a }}", None, "t")
    assert Check.SUBJECT_TOO_LONG not in [w.check for w in content_warnings(templated)]
    assert longest_subject([]) is None


def test_rendered_subjects_skip_rows_that_do_not_render_and_a_broken_template() -> None:
    source = TemplateSource("Hi {{ first_name }}", None, "t")
    data = [(1, {"email": "a@x.org", "first_name": "Ann"}), (2, {"email": "b@x.org"})]
    assert rendered_subjects(source, data, email_column="email", sender=SENDER, run_date=DAY) == [
        (1, "Hi Ann")
    ]
    broken = TemplateSource("Hi {{ first_name }", None, "t")
    assert (
        rendered_subjects(broken, data, email_column="email", sender=SENDER, run_date=DAY) is None
    )


def test_sandbox_messages_keep_their_underscores_through_markdown() -> None:
    """Verify the escaped text of a sandbox refusal has no bare `__` (markdown bold) and reads
    back as the message once the escapes are dropped."""
    message = "text: line 1, column 6: not allowed in a template: attribute '__mro__'"
    shown = plain(message)
    assert "__" not in shown and "\\_\\_mro\\_\\_" in shown
    assert re.sub(r"\\(.)", r"\1", shown) == message
