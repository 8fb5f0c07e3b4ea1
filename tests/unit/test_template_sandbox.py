"""Known Jinja2 sandbox-escape payloads: refused when saved, refused when rendered, harmless.

Two walls: `screen` refuses the constructs at compile (and so at save), and the
ImmutableSandboxedEnvironment refuses them again if a stored template ever skipped the
first wall. Neither may read a file, an environment variable or an object's internals.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from outreach_core.domain.templating import (
    CompiledTemplate,
    TemplateSource,
    _compile,
    _env_for,
    _render,
)
from outreach_core.errors import TemplateError

CANARY_ENV = "OUTREACH_TEST_CANARY"
CANARY_VALUE = "canary-env-5d1e"
CANARY_FILE_TEXT = "canary-file-8c2b"

#: `FILE` is replaced by the path of a file holding CANARY_FILE_TEXT
PAYLOADS = {
    "class": "{{ ''.__class__ }}",
    "mro": "{{ ''.__class__.__mro__[1] }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ recipient.__init__.__globals__ }}",
    "builtins": "{{ cycler.__init__.__globals__.__builtins__.open('FILE').read() }}",
    "init": "{{ ().__init__ }}",
    "cycler-environ": "{{ cycler.__init__.__globals__.os.environ['" + CANARY_ENV + "'] }}",
    "joiner": "{{ joiner.__init__.__globals__.os.popen('cat FILE').read() }}",
    "namespace": "{{ namespace.__init__.__globals__ }}",
    "lipsum": "{{ lipsum.__globals__['os'].environ }}",
    "lipsum-plain": "{{ lipsum }}",
    "self": "{{ self._TemplateReference__context }}",
    "self-globals": "{{ self.__init__.__globals__ }}",
    "range-class": "{{ range.__class__ }}",
    "attr-filter": "{{ ''|attr('__class__')|attr('__mro__') }}",
    "attr-filter-plain-name": "{{ recipient|attr('email') }}",
    "getitem-dunder": "{{ recipient['__class__'] }}",
    "private-name": "{{ _private }}",
    "format-method": "{{ '{0.__class__.__mro__}'.format('') }}",
    "format-globals": "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "format-map": "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "format-filter": "{{ '%s'|format(''.__class__) }}",
    "getattribute": "{{ recipient.__getattribute__('email') }}",
    "config": "{{ config.items() }}",
    "include-file": "{% include 'FILE' %}",
    "import": "{% import 'os' as os %}{{ os.environ }}",
    "loop-class": "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}",
}

#: what no error message or output may contain: the canaries and Python object reprs
LEAKS = (CANARY_VALUE, CANARY_FILE_TEXT, "<class", "<function", "<module", " at 0x")


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment variable and a file a successful escape would read."""
    monkeypatch.setenv(CANARY_ENV, CANARY_VALUE)
    path = tmp_path / "canary.txt"
    path.write_text(CANARY_FILE_TEXT, encoding="utf-8")
    return path


def _context() -> dict[str, object]:
    return {"recipient": {"email": "ann@example.com"}, "name": "Ann"}


def _assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked into {text!r}"


@pytest.mark.parametrize("part", ["subject", "html", "text"])
@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_escape_payload_is_refused_when_the_template_is_compiled(
    payload: str, part: str, canaries: Path
) -> None:
    """Verify every escape payload in any part is refused at compile/save, naming part, line
    and column, without reading anything."""
    payload = payload.replace("FILE", str(canaries))
    parts = {"subject": "Hi", "html": None, "text": "Hello"}
    parts[part] = payload
    with pytest.raises(TemplateError) as excinfo:
        CompiledTemplate(TemplateSource(**parts))
    message = str(excinfo.value)
    assert message.startswith(f"{part}: line 1, column ")
    assert "not allowed in a template" in message
    _assert_no_leak(message)


@pytest.mark.parametrize("part", ["html", "text"])
@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_escape_payload_is_refused_by_the_sandbox_when_rendered(
    payload: str, part: str, canaries: Path
) -> None:
    """Verify the sandbox alone (the compile-time screen bypassed) still refuses every payload
    at render with a TemplateError, and nothing secret reaches the message."""
    payload = payload.replace("FILE", str(canaries))
    try:
        template = _compile(_env_for(part), part, payload)
    except TemplateError as exc:  # e.g. `{% import %}` needs a loader even to compile
        _assert_no_leak(str(exc))
        return
    with pytest.raises(TemplateError) as excinfo:
        _render(template, part, _context())
    message = str(excinfo.value)
    assert message.startswith(f"{part}: ")
    _assert_no_leak(message)


def test_only_plain_values_can_be_printed() -> None:
    """Verify printing an object (here a function the context carries) is refused: its repr
    would show Python internals."""
    template = _compile(_env_for("text"), "text", "{{ f }}")
    with pytest.raises(TemplateError, match="cannot print a function"):
        _render(template, "text", {"f": _context})


def test_ordinary_templates_still_work() -> None:
    """Verify the screen does not refuse everyday constructs: loops, filters, defaults,
    conditionals, macros, set, dict access and strings with single underscores."""
    source = TemplateSource(
        "Hi {{ name|title }}",
        None,
        "{% macro greet(n) %}Hello {{ n }}{% endmacro %}{{ greet(name) }}\n"
        "{% set items = ['a_b', 'c'] %}{% for i in items %}{{ loop.index }}={{ i }} {% endfor %}\n"
        "{{ nickname|default('friend') }} {{ recipient['email'] }} {{ '%s!'|format(name) }}\n"
        "{% if name is defined %}yes{% endif %} {{ range(3)|join(',') }}",
    )
    rendered = CompiledTemplate(source).render(_context())
    assert rendered.subject == "Hi Ann"
    assert rendered.text == ("Hello Ann\n1=a_b 2=c \nfriend ann@example.com Ann!\nyes 0,1,2")
