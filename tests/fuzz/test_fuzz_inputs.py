"""Property-based fuzzing (hypothesis, bounded): CSV import and template input either work or
raise the documented error types, never anything else."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from outreach_core.adapters.contact_files import parse_csv, parse_file, sort_rows
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import InputError, TemplateError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# CSV-ish bytes: mostly the characters that matter to a CSV parser, sometimes anything
CSV_ALPHABET = ',;\t|"\n\r @.abcxyzé' + string.digits
cells = st.text(alphabet=CSV_ALPHABET, max_size=30)
csv_text = st.lists(st.lists(cells, min_size=1, max_size=5), min_size=0, max_size=8).map(
    lambda rows: "\n".join(",".join(row) for row in rows)
)
encoded = st.tuples(csv_text, st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-8-sig"])).map(
    lambda pair: pair[0].encode(pair[1], errors="replace")
)
csv_bytes = st.one_of(
    encoded,
    st.binary(max_size=300),
    csv_text.map(lambda t: ("email,name\n" + t).encode()),
    st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),  # looks like an XLSX
)


@FUZZ
@given(data=csv_bytes, email_column=st.one_of(st.none(), st.sampled_from(["email", "x", ""])))
@example(data=b"PK\x03\x04", email_column=None)  # a ZIP signature and nothing else
def test_csv_import_accepts_or_refuses_with_input_error(
    data: bytes, email_column: str | None
) -> None:
    """Verify any bytes give a ParsedFile whose rows are all accounted for, or an InputError."""
    try:
        parsed = parse_file(data, source="fuzz.csv", email_column=email_column)
    except InputError as exc:
        assert str(exc)  # says why
        return
    report = sort_rows(parsed)
    assert len(report.imported) + len(report.rejected) + len(report.duplicates) == len(parsed.rows)
    assert parsed.email_column in parsed.columns
    for row in parsed.rows:
        assert set(row) <= set(parsed.columns)


@FUZZ
@given(raw=st.text(max_size=80))
def test_address_check_never_raises(raw: str) -> None:
    """Verify the syntax check returns a verdict for any text (ok with a key, or an error)."""
    checked = check_syntax(raw)
    assert (checked.ok and checked.key is not None) or (not checked.ok and checked.error)


@FUZZ
@given(data=csv_text.map(lambda t: ("email,reason\n" + t).encode()))
def test_csv_parsing_of_suppression_lists_never_crashes(data: bytes) -> None:
    """Verify the suppression import's parser input gives rows or an InputError."""
    try:
        parsed = parse_csv(data, source="list.csv")
    except InputError:
        return
    assert all(isinstance(v, str) for row in parsed.rows for v in row.values())


# template text: Jinja syntax fragments mixed with free text, so the parser is reached deeply
JINJA_BITS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " name ", " x ", "|upper", "|default('d')", "|e",
    " if ", " else ", " endif ", " for x in items ", " endfor ", "(", ")", "[", "]", ".",
    "'s'", "1", " + ", " ~ ", "recipient.email", "__class__", "range(3)", " set y = 2 ",
    "\n", "<p>", "</p>", "&", '"', "lipsum()", "cycler", "self", "{%raw%}", "{%endraw%}",
]  # fmt: skip
template_text = st.lists(
    st.one_of(st.sampled_from(JINJA_BITS), st.text(max_size=5)), max_size=14
).map("".join)
values = st.dictionaries(
    st.sampled_from(["name", "x", "items", "y", "email"]),
    st.one_of(st.text(max_size=10), st.integers(), st.lists(st.text(max_size=3), max_size=3)),
    max_size=5,
)


@FUZZ
@given(subject=template_text, html=st.one_of(st.none(), template_text), text=template_text,
       variables=values)  # fmt: skip
def test_templates_compile_and_render_or_raise_template_error(
    subject: str, html: str | None, text: str, variables: dict
) -> None:
    """Verify any template input either renders or raises TemplateError naming the part."""
    try:
        template = CompiledTemplate(TemplateSource(subject, html, text or None))
        rendered = template.render(variables)
    except TemplateError as exc:
        message = str(exc)
        assert message.split(":", 1)[0] in (
            "subject",
            "html",
            "text",
            "a template needs an HTML part, a text part or both",
        )
        return
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
