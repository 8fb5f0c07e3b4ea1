"""Templates: sandboxed, strict Jinja2 (an undefined variable is an error, never blank)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach_core.errors import TemplateError

SUBJECT_FILE, HTML_FILE, TEXT_FILE = "subject.txt", "body.html", "body.txt"

_html_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
_plain_env = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@dataclass(frozen=True)
class TemplateSource:
    """The three parts of a template as the user wrote them."""

    subject: str
    html: str | None
    text: str | None


@dataclass(frozen=True)
class Rendered:
    """One recipient's message content."""

    subject: str
    html: str | None
    text: str | None


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


class CompiledTemplate:
    """A template compiled once per run and rendered once per recipient."""

    def __init__(self, source: TemplateSource) -> None:
        self.source = source
        self._subject = _compile(_plain_env, "subject", source.subject)
        self._html = _compile(_html_env, "html", source.html) if source.html else None
        self._text = _compile(_plain_env, "text", source.text) if source.text else None

    @property
    def variables(self) -> set[str]:
        """Names the template reads from its context."""
        names: set[str] = set()
        for env, part in (
            (_plain_env, self.source.subject),
            (_html_env, self.source.html),
            (_plain_env, self.source.text),
        ):
            if part:
                names |= meta.find_undeclared_variables(env.parse(part))
        return names

    def render(self, variables: dict[str, Any]) -> Rendered:
        """Render every part; a missing variable or a line break in the subject raises."""
        subject = _render(self._subject, "subject", variables).strip()
        if "\r" in subject or "\n" in subject:
            raise TemplateError("subject: renders to more than one line")
        html = _render(self._html, "html", variables) if self._html else None
        text = _render(self._text, "text", variables) if self._text else None
        return Rendered(subject=subject, html=html, text=text)


def _compile(env: ImmutableSandboxedEnvironment, part: str, source: str) -> Any:
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{part}: line {exc.lineno}: {exc.message}") from None


def _render(template: Any, part: str, variables: dict[str, Any]) -> str:
    try:
        return template.render(variables)
    except UndefinedError as exc:
        raise TemplateError(f"{part}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"{part}: not allowed in a template: {exc}") from None
    except Exception as exc:  # a filter or expression failing on this row's values
        raise TemplateError(f"{part}: {type(exc).__name__}: {exc}") from None
