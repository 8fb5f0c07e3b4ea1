"""What the Templates page and the CLI compute about a template: a report (variables, warnings,
compile error), a preview of one audience row, a diff between versions, the folder format
as a zip. Pure: no I/O beyond the bytes given and returned.
"""

from __future__ import annotations

import difflib
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from outreach_core.domain.models import Template
from outreach_core.domain.planning import SenderIdentity, render_context
from outreach_core.domain.template_checks import ContentWarning, content_warnings
from outreach_core.domain.templating import (
    HTML_FILE,
    SUBJECT_FILE,
    TEXT_FILE,
    CompiledTemplate,
    Rendered,
    TemplateSource,
)
from outreach_core.errors import TemplateError


@dataclass(frozen=True)
class TemplateReport:
    """A template as the editor shows it: its error, or its variables; and its warnings."""

    error: str | None
    variables: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    builtins: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    warnings: list[ContentWarning] = field(default_factory=list)


def source_of(template: Template) -> TemplateSource:
    """The parts of a stored template version."""
    return TemplateSource(template.subject, template.html, template.text)


def source_from_editor(subject: str, html: str, text: str) -> TemplateSource:
    """Editor fields to a source: an empty body field means the template has no such part."""
    return TemplateSource(subject.strip(), html if html.strip() else None, text or None)


def inspect_template(
    source: TemplateSource,
    columns: Sequence[str] | None = None,
    *,
    subjects: Sequence[tuple[int, str]] | None = None,
) -> TemplateReport:
    """Compile a template and describe it; `columns` (an audience's) adds the missing ones,
    `subjects` (the preview rows' rendered subjects) what the subject-length warning measures."""
    warnings = content_warnings(source, rendered_subjects=subjects)
    try:
        compiled = CompiledTemplate(source)
    except TemplateError as exc:
        return TemplateReport(error=str(exc), warnings=warnings)
    return TemplateReport(
        error=None,
        variables=sorted(compiled.column_variables),
        optional=sorted(compiled.optional_variables),
        builtins=sorted(compiled.variables - compiled.column_variables),
        missing_columns=compiled.missing_columns(list(columns)) if columns is not None else [],
        warnings=warnings,
    )


def find_row(
    rows: Sequence[tuple[int, dict[str, Any]]],
    *,
    email_column: str,
    position: int,
    email_search: str = "",
) -> tuple[int, dict[str, Any]] | None:
    """The row to preview: the first whose address contains `email_search` (case-insensitive)
    when it is given, else the row at `position` (1-based). None when nothing matches."""
    needle = email_search.strip().lower()
    if needle:
        return next((r for r in rows if needle in str(r[1].get(email_column) or "").lower()), None)
    return rows[position - 1] if 0 < position <= len(rows) else None


@dataclass(frozen=True)
class Preview:
    """One row rendered: the message, or the error that row would be skipped with."""

    row_number: int
    email: str
    variables: dict[str, Any]
    rendered: Rendered | None
    error: str | None


def preview_row(
    source: TemplateSource,
    row: tuple[int, dict[str, Any]],
    *,
    email_column: str,
    sender: SenderIdentity,
    run_date: datetime,
    unsubscribe: Callable[[str], str] | None = None,
) -> Preview:
    """Render one audience row exactly as a run would."""
    number, data = row
    email = str(data.get(email_column) or "")
    try:
        rendered = CompiledTemplate(source).render(
            render_context(
                data, email=email, sender=sender, run_date=run_date, unsubscribe=unsubscribe
            )
        )
    except TemplateError as exc:
        return Preview(number, email, data, None, str(exc))
    return Preview(number, email, data, rendered, None)


#: the audience rows whose rendered subjects the subject-length warning measures
SUBJECT_ROWS = 50


def rendered_subjects(
    source: TemplateSource,
    rows: Sequence[tuple[int, dict[str, Any]]],
    *,
    email_column: str,
    sender: SenderIdentity,
    run_date: datetime,
    unsubscribe: Callable[[str], str] | None = None,
    limit: int = SUBJECT_ROWS,
) -> list[tuple[int, str]] | None:
    """(row number, rendered subject) of the first `limit` rows that render; None when the
    template does not compile (its error says why)."""
    try:
        compiled = CompiledTemplate(source)
    except TemplateError:
        return None
    found: list[tuple[int, str]] = []
    for number, data in rows[:limit]:
        context = render_context(
            data,
            email=str(data.get(email_column) or ""),
            sender=sender,
            run_date=run_date,
            unsubscribe=unsubscribe,
        )
        try:
            found.append((number, compiled.render(context).subject))
        except TemplateError:
            continue  # the row's preview says why it does not render
    return found


def diff_versions(old: Template, new: Template) -> str:
    """A unified diff of every part between two versions ('' when they are the same)."""
    chunks: list[str] = []
    for filename, attribute in (
        (SUBJECT_FILE, "subject"),
        (HTML_FILE, "html"),
        (TEXT_FILE, "text"),
    ):
        before = (getattr(old, attribute) or "").splitlines(keepends=True)
        after = (getattr(new, attribute) or "").splitlines(keepends=True)
        chunks.extend(
            line if line.endswith("\n") else line + "\n"
            for line in difflib.unified_diff(
                before,
                after,
                fromfile=f"v{old.version}/{filename}",
                tofile=f"v{new.version}/{filename}",
            )
        )
    return "".join(chunks)


def template_zip(source: TemplateSource) -> bytes:
    """The template in the folder format (`subject.txt`, `body.html`, `body.txt`), zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(SUBJECT_FILE, source.subject + "\n")
        if source.html is not None:
            archive.writestr(HTML_FILE, source.html)
        if source.text is not None:
            archive.writestr(TEXT_FILE, source.text)
    return buffer.getvalue()


def source_from_files(files: dict[str, bytes]) -> TemplateSource:
    """A template from uploaded files named like the folder format; errors name the file."""
    unknown = sorted(set(files) - {SUBJECT_FILE, HTML_FILE, TEXT_FILE})
    if unknown:
        raise TemplateError(
            f"unexpected file {', '.join(unknown)}: upload {SUBJECT_FILE}, {HTML_FILE}, {TEXT_FILE}"
        )
    try:
        texts = {name: data.decode("utf-8") for name, data in files.items()}
    except UnicodeDecodeError as exc:
        raise TemplateError(f"a file is not UTF-8 text: {exc}") from None
    if SUBJECT_FILE not in texts:
        raise TemplateError(f"{SUBJECT_FILE} is missing: a template needs a subject")
    if HTML_FILE not in texts and TEXT_FILE not in texts:
        raise TemplateError(f"upload {HTML_FILE}, {TEXT_FILE} or both")
    return TemplateSource(texts[SUBJECT_FILE].strip(), texts.get(HTML_FILE), texts.get(TEXT_FILE))
