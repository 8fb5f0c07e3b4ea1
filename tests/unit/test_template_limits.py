"""Templates that would keep a worker busy or fill its memory: each is a render error naming
the bound it passed, and ordinary templates render exactly as before.

Every bomb renders in a forked child given 20 s: a bound that stops working fails the test
(the child is killed) instead of hanging the suite or eating the machine's memory.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach_core.domain.template_limits import MAX_LOOP_STEPS, TIME_LIMIT_S
from outreach_core.domain.template_sizes import MAX_INT_DIGITS, SIZE_CAP
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.errors import TemplateError

CHILD_TIMEOUT_S = 20

CAP = "the 1 MB size cap"
#: template (text part) -> what the render error must say
BOMBS = {
    "power": ("{{ 9 ** (9 ** 9) }}", "exponent too large"),
    "power-of-a-column": ("{{ n ** 100000 }}", "exponent too large"),
    "repeated-squaring": (
        "{% macro sq(x, k) %}{% if k %}{{ sq(x * x, k - 1) }}{% else %}{{ x }}"
        "{% endif %}{% endmacro %}{{ sq(3, 40) }}",
        "number too large",
    ),
    "nested-ranges": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        f"a message may take at most {MAX_LOOP_STEPS:,} loop steps (",
    ),
    "nested-ranges-small": (
        "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
        f"a message may take at most {MAX_LOOP_STEPS:,} loop steps (",
    ),
    "huge-range": ("{{ range(10 ** 12)|list|length }}", "loop limit: range() of"),
    "nested-loops-over-a-string": (
        "{% set s = 'ab' * 500000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        f"loop limit: a message may take at most {MAX_LOOP_STEPS:,} loop steps",
    ),
    "string-repetition": ("{{ 'a' * 10**8 * 5 }}", "string repetition too large"),
    "list-repetition": ("{{ ([0] * 10**9)|length }}", "list repetition too large"),
    "plus-doubling": ("{% set a = 'a' * 600000 %}{{ a + a }}", "operator + would make 1,200,000"),
    "tilde-doubling": (
        "{% macro d(x, k) %}{% if k %}{{ d(x ~ x, k - 1) }}{% endif %}{% endmacro %}{{ d('ab', 40) }}",
        f"~ would make 1,048,576 characters; a value may have at most {SIZE_CAP:,} ({CAP})",
    ),
    "list-literal-to-string": (
        "{% set a = 'a' * 900000 %}{{ [a, a, a]|string }}",
        "the input of |string would make",
    ),
    "percent-width": ("{{ '%999999999d' % 1 }}", "%-formatting would make 1,000,000,011"),
    "percent-star": ("{{ '%*d' % (10 ** 9, 1) }}", "%-formatting would make"),
    "filter-center": ("{{ name|center(10 ** 9) }}", "|center would make 1,000,000,000 characters"),
    "filter-format": ("{{ '%.999999999f'|format(1.5) }}", "|format would make"),
    "filter-indent": ("{{ ('x\\n' * 5000)|indent('y' * 5000) }}", "|indent would make"),
    "filter-wordwrap": ("{{ ('a ' * 5000)|wordwrap(1, wrapstring='-' * 5000) }}", "|wordwrap"),
    "filter-join": ("{{ (['a'] * 5000)|join('-' * 5000) }}", "|join would make"),
    "filter-join-generator": ("{{ (['a'] * 5000)|map('upper')|join('-' * 5000) }}", "|join"),
    "filter-replace": ("{{ ('a' * 5000)|replace('a', 'b' * 5000) }}", "|replace would make"),
    "filter-batch": ("{{ [1]|batch(10 ** 9, 0)|list|length }}", "|batch count"),
    "filter-slice": ("{{ [1]|slice(10 ** 9)|list|length }}", "|slice count"),
    "filter-tojson": ("{{ [1, 2]|tojson(indent=10 ** 8) }}", "|tojson would make"),
    "filter-urlize": ("{{ ('x.com ' * 5000)|urlize(target='t' * 5000) }}", "|urlize would make"),
    "method-center": ("{{ name.center(10 ** 9) }}", ".center() would make"),
    "method-ljust": ("{{ name.ljust(10 ** 9) }}", ".ljust() would make"),
    "method-zfill": ("{{ '1'.zfill(10 ** 9) }}", ".zfill() would make"),
    "method-expandtabs": ("{{ ('\\t' * 1000).expandtabs(10 ** 6) }}", ".expandtabs() would make"),
    "method-replace": ("{{ ('a' * 5000).replace('a', 'b' * 5000) }}", ".replace() would make"),
    "method-join": ("{{ ('-' * 5000).join(['a'] * 5000) }}", ".join() would make"),
    "method-translate": ("{{ ('a' * 5000).translate({97: 'b' * 5000}) }}", ".translate() would"),
    "method-to-bytes": ("{{ (1).to_bytes(10 ** 9, 'big')|length }}", ".to_bytes() would make"),
    "format-through-getitem": ("{{ '{:>999999999}'['format'](1) }}", ".format() is not allowed"),
    "output-size": (
        "{% for i in range(2000) %}{{ 'a' * 1000 }}{% endfor %}",
        f"text: template exceeds {CAP}",
    ),
    "block-size": (
        "{% set x %}{% for i in range(50000) %}" + "a" * 40 + "{% endfor %}{% endset %}{{ x }}",
        f"template exceeds {CAP}",
    ),
    "macro-fork-bomb": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        f"text: time limit of {TIME_LIMIT_S:g} s per message exceeded",
    ),
    "recursive-loop": (
        "{% for i in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
        "text: macros or loops nest too deep",
    ),
}


def _render_in_child(source: TemplateSource, variables: dict[str, object]) -> tuple[str, str]:
    """('ok', text) or ('error', message), from a forked child; fails after CHILD_TIMEOUT_S."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def target() -> None:
        try:
            rendered = CompiledTemplate(source).render(variables)
            sender.send(("ok", rendered.text or ""))
        except TemplateError as exc:
            sender.send(("error", str(exc)))

    child = context.Process(target=target, daemon=True)
    child.start()
    try:
        if not receiver.poll(CHILD_TIMEOUT_S):
            pytest.fail(f"the render did not finish within {CHILD_TIMEOUT_S} s")
        return receiver.recv()
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize(("template", "bound"), BOMBS.values(), ids=BOMBS.keys())
def test_a_template_past_a_bound_is_a_render_error_naming_the_bound(
    template: str, bound: str
) -> None:
    """Verify each bomb ends, in a few seconds at most, as a TemplateError naming its part and
    the bound it passed."""
    kind, message = _render_in_child(TemplateSource("Hi", None, template), {"name": "Ann", "n": 9})

    assert kind == "error", message[:200]
    assert message.startswith("text: "), message
    assert bound in message


@pytest.mark.parametrize("part", ["subject", "html", "text"])
def test_each_part_has_the_size_cap_and_the_error_names_the_part(part: str) -> None:
    """Verify a part rendering to more than 1,000,000 characters is refused naming the part,
    and one of exactly 1,000,000 is not refused for its size."""
    big = "{% for i in range(1002) %}{{ 'a' * 999 }}{% endfor %}"
    parts: dict[str, str | None] = {"subject": "Hi", "html": None, "text": "x"}
    parts[part] = big

    kind, message = _render_in_child(TemplateSource(**parts), {})  # type: ignore[arg-type]

    assert (kind, message) == (
        "error",
        f"{part}: template exceeds the 1 MB size cap (a part "
        f"may render to at most {SIZE_CAP:,} characters)",
    )
    exact = TemplateSource("Hi", None, "{{ 'a' * 1000000 }}")
    assert _render_in_child(exact, {}) == ("ok", "a" * SIZE_CAP)


def test_the_bounds_sit_where_they_say() -> None:
    """Verify the edges: a power of 4,215 digits and a string of 1,000,000 characters render;
    one digit-doubling or one character more is refused."""
    fits = TemplateSource(
        "Hi", None, "{{ (2 ** 14000)|string|length }} {{ ('a' * 1000000)|length }}"
    )
    assert _render_in_child(fits, {}) == ("ok", "4215 1000000")
    for template, bound in (
        ("{{ 2 ** 15000 }}", "exponent too large"),
        ("{{ 'a' * 1000001 }}", "string repetition too large"),
    ):
        assert bound in _render_in_child(TemplateSource("Hi", None, template), {})[1]
    assert MAX_INT_DIGITS == 4_300


def test_loop_steps_are_counted_over_the_whole_message() -> None:
    """Verify loops count together, nested and across parts: 300 x 300 steps fit in each of
    two parts alone, but not in one message."""
    nested = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}ok"
    assert CompiledTemplate(TemplateSource("Hi", None, nested)).render({}).text == "ok"

    with pytest.raises(TemplateError, match=r"^text: loop limit"):
        CompiledTemplate(TemplateSource("Hi", nested, nested)).render({})


class SteppingClock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_time_limit_is_per_message_and_checked_inside_the_render() -> None:
    """Verify the time limit counts the whole message on the clock it is given: a clock moving
    0.6 s a read lets the subject render and stops the HTML; with a still clock the same
    template renders."""
    source = TemplateSource("Hi {{ name }}", "<p>{{ name }} {{ name }}</p>", None)
    still: Callable[[], float] = lambda: 0.0  # noqa: E731

    assert CompiledTemplate(source).render({"name": "Ann"}, timer=still).subject == "Hi Ann"
    with pytest.raises(TemplateError) as excinfo:
        CompiledTemplate(source).render({"name": "Ann"}, timer=SteppingClock(0.6))
    assert str(excinfo.value) == f"html: time limit of {TIME_LIMIT_S:g} s per message exceeded"


def test_a_loop_without_output_is_stopped_by_the_time_limit() -> None:
    """Verify a loop whose body prints nothing and calls nothing still checks the time (each
    step does)."""
    source = TemplateSource("Hi", None, "{% for c in 'abcdefgh' %}{% endfor %}done")

    with pytest.raises(TemplateError, match="time limit"):
        CompiledTemplate(source).render({}, timer=SteppingClock(0.5))


def test_the_internal_filters_cannot_be_named_by_a_template() -> None:
    """Verify `|_loop_step` and any other filter starting with `_` is refused at compile."""
    with pytest.raises(TemplateError, match=r"not allowed in a template: filter \|_loop_step"):
        CompiledTemplate(TemplateSource("Hi", None, "{{ [1]|_loop_step|list }}"))


ORDINARY = [
    "{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ x }}{% else %}none{% endfor %}",
    "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}{% for x in items if x != 'b' %}{{ x }}"
    "{% endfor %}",
    "{% for x in tree recursive %}[{{ x.n }}{% if x.c %}{{ loop(x.c) }}{% endif %}]{% endfor %}",
    "{% macro box(t) %}<{{ t }}|{{ caller() }}>{% endmacro %}{% call box('a') %}in{% endcall %}",
    "{% filter upper %}shout {{ name }}{% endfilter %}{% set t %}{{ name }}!{% endset %}{{ t }}",
    "{{ items|map('upper')|join('-') }} {{ items|select('ne', 'a')|list|length }} {{ [1, 2]|sum }}",
    "{{ items|reverse|join }} {{ (range(5)|list)[2] }} {{ range(3)|length }} {{ name|wordwrap(2) }}",
    "{{ '%s is %05d'|format(name, 3) }} {{ name|truncate(3, True, '') }} {{ name|center(9) }}",
    "{{ name ~ 1 ~ none }} {{ 2.5 * 2 }} {{ 7 % 3 }} {{ 10 // 3 }} {{ -2 ** 3 }} {{ 2 ** -1 }}",
    "{{ 'ab' * 3 }} {{ ([1] * 3)|length }} {{ '%-6s|' % name }} {{ items|batch(2)|list|length }} {{ d|tojson }}",
    "{% for a in items %}{% for b in items %}{{ loop.cycle('o', 'e') }}{% endfor %}{% endfor %}",
    "{{ name.ljust(6) }}|{{ ', '.join(items) }} {{ name.replace('n', 'N') }} {{ name|indent(2, true) }}",
]


@pytest.mark.parametrize("template", ORDINARY)
@pytest.mark.parametrize("autoescape", [False, True], ids=["text", "html"])
def test_ordinary_templates_render_as_jinja_renders_them(template: str, autoescape: bool) -> None:
    """Verify the bounded sandbox changes nothing for templates within the bounds: the same
    output as Jinja2's own immutable sandbox, escaping included."""
    variables = {
        "name": "Ann<",
        "items": ["a", "b", "c"],
        "d": {"z": 1, "y": 2},
        "tree": [{"n": 1, "c": [{"n": 2, "c": []}]}],
    }
    stock = ImmutableSandboxedEnvironment(autoescape=autoescape, keep_trailing_newline=True)
    expected = stock.from_string(template).render(variables)
    source = TemplateSource(
        "Hi", template if autoescape else None, None if autoescape else template
    )

    rendered = CompiledTemplate(source).render(variables)

    assert (rendered.html if autoescape else rendered.text) == expected
