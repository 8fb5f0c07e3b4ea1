"""Templates: sandboxed, strict Jinja2 (an undefined variable is an error, never blank).

Two walls keep a template inside its box. `screen` refuses, when a template is saved or
compiled, every construct known from sandbox escapes (private and dunder names, `|attr`,
`.format`, the helper globals, `self`, includes); the immutable sandbox (`BoundedSandbox`) then
refuses unsafe attribute access at render time and only plain values may be printed.
What a render may cost (size, loop steps, time per message) is bounded by `template_limits`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from inscriptis import get_text
from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from outreach_core.domain.template_limits import (
    BoundedSandbox,
    RenderLimitError,
    bound_tree,
    render_budget,
    tick,
)
from outreach_core.errors import TemplateError

SUBJECT_FILE, HTML_FILE, TEXT_FILE = "subject.txt", "body.html", "body.txt"

#: variables every template may use besides the audience's columns, with what they hold
BUILTINS: dict[str, str] = {
    "recipient.email": "the recipient's address as it will be sent to",
    "sender_name": "the display name of the engine's From",
    "sender_email": "the address of the engine's From",
    "today": "the run's date, YYYY-MM-DD (UTC)",
    "run_date": "the same date as `today`: the day the run was queued",
    "unsubscribe_url": "the workflow's unsubscribe address plus this recipient's signed token "
    "(`?email=…&token=…`); undefined when the workflow has no unsubscribe URL",
}
BUILTIN_NAMES = frozenset(name.partition(".")[0] for name in BUILTINS)

#: the longest subject a row may render to. Longer subjects are folded into lines of 78
#: characters (RFC 5322), but one of more than this is a mistake (a whole cell of text pasted
#: into the subject), so that row is a render error rather than a message.
MAX_SUBJECT_CHARS = 10_000

#: helper globals Jinja2 ships that sandbox escapes start from; removed from our environments
_REMOVED_GLOBALS = ("cycler", "joiner", "namespace", "lipsum")
#: names a template may not read even if a row had such a column
_FORBIDDEN_NAMES = frozenset({*_REMOVED_GLOBALS, "self", "config"})
_FORBIDDEN_FILTERS = frozenset({"attr"})
_FORBIDDEN_METHODS = frozenset({"format", "format_map", "mro"})
#: values a template may print; anything else would show a Python object's repr
_PRINTABLE = (str, int, float, Decimal, date, Markup, Undefined)


def _printable(value: Any) -> Any:
    tick()
    if value is None or isinstance(value, _PRINTABLE):
        return value
    raise SecurityError(f"cannot print a {type(value).__name__}; print one of its values")


def _environment(*, autoescape: bool) -> BoundedSandbox:
    env = BoundedSandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        finalize=_printable,
    )
    for name in _REMOVED_GLOBALS:
        env.globals.pop(name, None)
    return env


_html_env = _environment(autoescape=True)
_plain_env = _environment(autoescape=False)

PARTS = ("subject", "html", "text")


@dataclass(frozen=True)
class TemplateSource:
    """The three parts of a template as the user wrote them."""

    subject: str
    html: str | None
    text: str | None

    def part(self, name: str) -> str | None:
        """One part by name: subject, html or text."""
        return {"subject": self.subject, "html": self.html, "text": self.text}[name]


@dataclass(frozen=True)
class Rendered:
    """One recipient's message content; `text_derived` when the text came from the HTML."""

    subject: str
    html: str | None
    text: str | None
    text_derived: bool = False


def load_template_dir(folder: Path) -> TemplateSource:
    """Read `subject.txt`, `body.html` and/or `body.txt` from a folder."""
    if not folder.is_dir():
        raise TemplateError(f"template folder {folder} does not exist")
    subject_path = folder / SUBJECT_FILE
    if not subject_path.is_file():
        raise TemplateError(f"{subject_path} is missing: a template needs a subject")
    html_path, text_path = folder / HTML_FILE, folder / TEXT_FILE
    html = html_path.read_text(encoding="utf-8") if html_path.is_file() else None
    text = text_path.read_text(encoding="utf-8") if text_path.is_file() else None
    if html is None and text is None:
        raise TemplateError(f"{folder} has neither {HTML_FILE} nor {TEXT_FILE}")
    subject = subject_path.read_text(encoding="utf-8").strip()
    return TemplateSource(subject=subject, html=html, text=text)


def write_template_dir(source: TemplateSource, folder: Path) -> list[Path]:
    """Write a template in the format `load_template_dir` reads; returns the files written.

    A part the template does not have is removed from the folder, so loading it back gives
    the same template.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in (
        (SUBJECT_FILE, source.subject + "\n"),
        (HTML_FILE, source.html),
        (TEXT_FILE, source.text),
    ):
        path = folder / name
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body (inscriptis), for the text part."""
    return get_text(html).strip() + "\n"


def _env_for(part: str) -> BoundedSandbox:
    return _html_env if part == "html" else _plain_env


def _column(source: str, lineno: int, needle: str) -> int:
    """1-based column of `needle` on a line (1 when it cannot be found)."""
    lines = source.splitlines()
    if not needle or not 0 < lineno <= len(lines):
        return 1
    return lines[lineno - 1].find(needle) + 1 or 1


_EXPRESSION = re.compile(r"\{\{.*?\}\}")


def _syntax_column(env: BoundedSandbox, source: str, lineno: int) -> int:
    """Column of the tag on the error line that fails on its own (Jinja2 reports lines only)."""
    lines = source.splitlines()
    if not 0 < lineno <= len(lines):
        return 1
    line = lines[lineno - 1]
    for match in _EXPRESSION.finditer(line):
        try:
            env.parse(match.group())
        except TemplateSyntaxError:
            return match.start() + 1
    tags = [i for i in (line.find("{%"), line.find("{{"), line.find("{#")) if i >= 0]
    return min(tags) + 1 if tags else 1


def _refusals(tree: nodes.Template) -> Iterator[tuple[int, str, str]]:
    """(line, text to locate, why) for every construct `screen` refuses."""
    for node in tree.find_all(nodes.Node):
        match node:
            case nodes.Getattr(attr=attr) if attr.startswith("_") or attr in _FORBIDDEN_METHODS:
                yield node.lineno, attr, f"attribute {attr!r}"
            case nodes.Getitem(arg=nodes.Const(value=str(key))) if key.startswith("_"):
                yield node.lineno, key, f"item {key!r}"
            case nodes.Name(name=name) if name.startswith("_") or name in _FORBIDDEN_NAMES:
                yield node.lineno, name, f"name {name!r}"
            case nodes.Filter(name=name) if name in _FORBIDDEN_FILTERS or name.startswith("_"):
                yield node.lineno, name, f"filter |{name}"
            case nodes.Const(value=str(text)) if "__" in text:
                yield node.lineno, "__", f"string {text!r}"
            case nodes.Include() | nodes.Import() | nodes.FromImport() | nodes.Extends():
                word = type(node).__name__.lower()
                yield node.lineno, word, f"{{% {word} %}} (a template is one self-contained file)"


def screen(part: str, source: str) -> nodes.Template:
    """Parse one part and refuse known escape constructs; raises TemplateError with the part,
    line and column. Returns the parsed tree."""
    env = _env_for(part)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        lineno = exc.lineno or 1
        column = _syntax_column(env, source, lineno)
        raise TemplateError(f"{part}: line {lineno}, column {column}: {exc.message}") from None
    for lineno, needle, why in _refusals(tree):
        column = _column(source, lineno, needle)
        raise TemplateError(
            f"{part}: line {lineno}, column {column}: not allowed in a template: {why}"
        )
    return tree


def _defaulted_names(tree: nodes.Template) -> set[str]:
    """Names used as `name | default(...)` somewhere in the tree."""
    return {
        f.node.name
        for f in tree.find_all(nodes.Filter)
        if f.name in ("default", "d") and isinstance(f.node, nodes.Name)
    }


class CompiledTemplate:
    """A template compiled once per run and rendered once per recipient."""

    def __init__(self, source: TemplateSource) -> None:
        self.source = source
        trees = {part: screen(part, text) for part in PARTS if (text := source.part(part))}
        if "subject" not in trees:
            raise TemplateError("subject: a template needs a subject")
        if "html" not in trees and "text" not in trees:
            raise TemplateError("a template needs an HTML part, a text part or both")
        self._variables = set().union(*(meta.find_undeclared_variables(t) for t in trees.values()))
        self._optional = set().union(*(_defaulted_names(t) for t in trees.values()))
        self._subject = _compile(_plain_env, "subject", source.subject)
        self._html = _compile(_html_env, "html", source.html) if source.html else None
        self._text = _compile(_plain_env, "text", source.text) if source.text else None

    @property
    def variables(self) -> set[str]:
        """Names the template reads from its context (built-ins included)."""
        return set(self._variables)

    @property
    def column_variables(self) -> set[str]:
        """Names the template expects from the audience's columns (built-ins excluded)."""
        return self._variables - BUILTIN_NAMES

    @property
    def optional_variables(self) -> set[str]:
        """Column variables the template gives a `| default(...)`: an empty cell is fine."""
        return self.column_variables & self._optional

    def missing_columns(self, columns: list[str]) -> list[str]:
        """Required variables that no column of the audience provides: every row would fail."""
        return sorted(self.column_variables - self.optional_variables - set(columns))

    def render(
        self, variables: dict[str, Any], *, timer: Callable[[], float] = time.monotonic
    ) -> Rendered:
        """Render every part; a missing variable, a line break in the subject, a subject
        longer than MAX_SUBJECT_CHARS or a bound of `template_limits` passed (the time limit
        counted on `timer` over the whole message) raises.

        With HTML only, the text part is derived from the rendered HTML.
        """
        with render_budget(timer):
            subject = _render(self._subject, "subject", variables).strip()
            if "\r" in subject or "\n" in subject:
                raise TemplateError("subject: renders to more than one line")
            if len(subject) > MAX_SUBJECT_CHARS:
                raise TemplateError(
                    f"subject: renders to {len(subject):,} characters; a subject may have at "
                    f"most {MAX_SUBJECT_CHARS:,} (check the columns the subject uses)"
                )
            html = _render(self._html, "html", variables) if self._html else None
            if self._text is not None:
                return Rendered(subject, html, _render(self._text, "text", variables))
        return Rendered(subject, html, html_to_text(html or ""), text_derived=True)


def _compile(env: BoundedSandbox, part: str, source: str) -> Any:
    try:
        return env.from_string(bound_tree(env.parse(source), env))
    except TemplateSyntaxError as exc:
        lineno = exc.lineno or 1
        column = _syntax_column(env, source, lineno)
        raise TemplateError(f"{part}: line {lineno}, column {column}: {exc.message}") from None


def _render(template: Any, part: str, variables: dict[str, Any]) -> str:
    try:
        return template.render(variables)
    except UndefinedError as exc:
        raise TemplateError(f"{part}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"{part}: not allowed in a template: {exc}") from None
    except RenderLimitError as exc:
        raise TemplateError(f"{part}: {exc}") from None
    except RecursionError:
        raise TemplateError(f"{part}: macros or loops nest too deep") from None
    except Exception as exc:  # a filter or expression failing on this row's values
        raise TemplateError(f"{part}: {type(exc).__name__}: {exc}") from None
