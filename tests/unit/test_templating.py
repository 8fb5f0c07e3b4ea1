"""Templates: sandboxed, strict Jinja2 with HTML autoescape and a one-line subject."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from outreach_core.domain.templating import CompiledTemplate, TemplateSource, load_template_dir
from outreach_core.errors import InputError, TemplateError


def compiled(
    subject: str = "Hi", html: str | None = None, text: str | None = "x"
) -> CompiledTemplate:
    return CompiledTemplate(TemplateSource(subject, html, text))


class Contact:
    """A value with a private attribute, as a careless integration might pass in."""

    def __init__(self) -> None:
        self.name = "Ann"
        self._secret = "hunter2"


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact.__dict__ }}",
        "{{ contact._secret }}",
        "{{ contact.__class__.__init__ }}",
    ],
)
def test_sandbox_refuses_private_and_dunder_attributes(expression: str) -> None:
    """Verify private or dunder attribute access is refused when the template is compiled."""
    with pytest.raises(
        TemplateError, match=r"^text: line 1, column \d+: not allowed in a template"
    ):
        compiled(text=expression)


def test_sandbox_is_immutable() -> None:
    """Verify a template cannot mutate the values it is given (ImmutableSandboxedEnvironment)."""
    items = [1, 2]
    with pytest.raises(TemplateError, match="not allowed"):
        compiled(text="{{ items.append(3) }}").render({"items": items})
    assert items == [1, 2]


def test_public_attribute_is_allowed() -> None:
    """Verify ordinary attribute access still works inside the sandbox."""
    assert compiled(text="{{ contact.name }}").render({"contact": Contact()}).text == "Ann"


def test_undefined_variable_raises_naming_it_and_the_part() -> None:
    """Verify StrictUndefined: a missing variable is an error, never blank."""
    with pytest.raises(TemplateError, match=r"^html: 'first_name' is undefined$"):
        compiled(html="<p>{{ first_name }}</p>", text=None).render({})


def test_undefined_attribute_of_a_given_value_raises() -> None:
    """Verify a missing key of a present mapping is also an error."""
    with pytest.raises(TemplateError, match="has no attribute 'city'"):
        compiled(text="{{ address.city }}").render({"address": {}})


def test_default_filter_makes_a_variable_optional() -> None:
    """Verify `default(...)` is the explicit way to let a variable be absent."""
    rendered = compiled(text="{{ nickname | default('friend') }}").render({})
    assert rendered.text == "friend"


def test_html_is_autoescaped_but_text_and_subject_are_not() -> None:
    """Verify a value with markup is escaped in HTML and left verbatim in text and subject."""
    template = compiled(subject="About {{ v }}", html="<p>{{ v }}</p>", text="{{ v }}")
    rendered = template.render({"v": "<b>Tom & Jerry</b>"})
    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert rendered.text == "<b>Tom & Jerry</b>"
    assert rendered.subject == "About <b>Tom & Jerry</b>"


@pytest.mark.parametrize("value", ["Ann\nBcc: x@example.net", "Ann\r\nBcc: x@example.net", "a\rb"])
def test_subject_rendering_to_several_lines_raises(value: str) -> None:
    """Verify a line break in the rendered subject is refused (no header injection via data)."""
    with pytest.raises(TemplateError, match="subject: renders to more than one line"):
        compiled(subject="Hello {{ name }}").render({"name": value})


def test_subject_surrounding_whitespace_is_trimmed() -> None:
    """Verify a trailing newline in the subject source (as editors write it) is harmless."""
    assert compiled(subject="Hello {{ name }}\n").render({"name": "Ann"}).subject == "Hello Ann"


@pytest.mark.parametrize(
    "source, message",
    [
        (TemplateSource("Hi {{ name", None, "x"), r"^subject: line 1, column 4: "),
        (TemplateSource("Hi", "<p>\n\n{% if %}</p>", None), r"^html: line 3, column 1: "),
        (TemplateSource("Hi", None, "one\n{% for x in %}\n"), r"^text: line 2, column 1: "),
        (TemplateSource("Hi", None, "{% endif %}"), r"^text: line 1, column 1: .*endif"),
        (TemplateSource("Hi", None, "ok {{ a }} then {{ b + }}"), r"^text: line 1, column 17: "),
    ],
    ids=["subject", "html", "text", "stray-endif", "second-tag"],
)
def test_syntax_error_names_the_part_line_and_column(source: TemplateSource, message: str) -> None:
    """Verify a template that does not compile raises TemplateError naming part, line, column."""
    with pytest.raises(TemplateError, match=message):
        CompiledTemplate(source)


def test_error_in_an_expression_is_wrapped_with_the_part() -> None:
    """Verify a filter or expression failing on a row's value is a TemplateError, not a crash."""
    with pytest.raises(TemplateError, match="text: ZeroDivisionError"):
        compiled(text="{{ 1 / count }}").render({"count": 0})


def test_template_error_is_an_input_error() -> None:
    """Verify callers catching InputError also catch template problems."""
    assert issubclass(TemplateError, InputError)


def test_variables_lists_names_read_from_every_part() -> None:
    """Verify `variables` reports what a template needs, excluding names it defines itself."""
    template = compiled(
        subject="{{ first_name }}",
        html="{% for item in items %}{{ item }}{% endfor %}",
        text="{% set greeting = 'hi' %}{{ greeting }} {{ company }}",
    )
    assert template.variables == {"first_name", "items", "company"}


def test_html_only_template_gets_a_text_part_derived_from_its_html() -> None:
    """Verify an HTML-only template renders a readable text part (inscriptis) marked derived."""
    rendered = compiled(
        html="<h1>Hello {{ name }}</h1><p>See <a href='https://example.com'>us</a>.</p>",
        text=None,
    ).render({"name": "Ann & Bob"})
    assert rendered.text_derived
    assert rendered.text is not None
    assert "Hello Ann & Bob" in rendered.text
    assert "<" not in rendered.text and "&amp;" not in rendered.text


def test_text_only_template_renders_no_html() -> None:
    """Verify a template may have just a text part."""
    rendered = compiled(html=None, text="x").render({})
    assert rendered.html is None
    assert (rendered.text, rendered.text_derived) == ("x", False)


def test_load_template_dir_reads_the_three_files(tmp_path: Path) -> None:
    """Verify subject.txt (stripped), body.html and body.txt are read from a folder."""
    (tmp_path / "subject.txt").write_text("Hello {{ name }}\n", encoding="utf-8")
    (tmp_path / "body.txt").write_text(
        textwrap.dedent(
            """\
            Dear {{ name }},
            see you soon.
            """
        ),
        encoding="utf-8",
    )
    source = load_template_dir(tmp_path)
    assert source == TemplateSource("Hello {{ name }}", None, "Dear {{ name }},\nsee you soon.\n")


def test_load_template_dir_without_subject_or_body_raises(tmp_path: Path) -> None:
    """Verify a folder missing subject.txt, or both bodies, is refused with the file named."""
    with pytest.raises(TemplateError, match=r"subject\.txt is missing"):
        load_template_dir(tmp_path)
    (tmp_path / "subject.txt").write_text("Hi", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"neither body\.html nor body\.txt"):
        load_template_dir(tmp_path)
    with pytest.raises(TemplateError, match="does not exist"):
        load_template_dir(tmp_path / "absent")


def test_subject_up_to_the_cap_renders_and_a_longer_one_is_a_render_error() -> None:
    """Verify a subject of MAX_SUBJECT_CHARS renders, and one character more is refused with
    a message naming the length and the bound (that row becomes a render_error)."""
    from outreach_core.domain.templating import MAX_SUBJECT_CHARS

    template = compiled(subject="{{ topic }}")
    assert len(template.render({"topic": "x" * MAX_SUBJECT_CHARS}).subject) == MAX_SUBJECT_CHARS
    with pytest.raises(TemplateError, match=r"renders to 10,001 characters; .* at most 10,000"):
        template.render({"topic": "x" * (MAX_SUBJECT_CHARS + 1)})
