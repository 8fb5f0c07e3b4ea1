"""Content checks: warnings about a template before anything is sent. Pure, no I/O.

A warning never blocks a send; it is listed on the Templates page and in the dry run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from html.parser import HTMLParser

from outreach_core.domain.templating import TemplateSource

#: Gmail clips a message whose HTML is larger than this
GMAIL_CLIP_BYTES = 102 * 1024
#: RFC 5322's recommended line length, which is also where most clients cut a subject
SUBJECT_MAX = 78


class Check(StrEnum):
    """What a content warning is about."""

    NO_UNSUBSCRIBE = "no_unsubscribe"
    HTML_TOO_LARGE = "html_too_large"
    IMAGE_WITHOUT_ALT = "image_without_alt"
    PLAIN_HTTP_LINK = "plain_http_link"
    NO_TEXT_PART = "no_text_part"
    SUBJECT_TOO_LONG = "subject_too_long"
    SUBJECT_EMPTY = "subject_empty"


@dataclass(frozen=True)
class ContentWarning:
    """One finding, as a sentence."""

    check: Check
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"


class _Scan(HTMLParser):
    """Collects links and images without alt from an HTML part (Jinja tags pass as text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        if tag == "img":
            if "alt" not in values:
                self.images_without_alt.append(values.get("src", "(no src)"))
            self.links.append(values.get("src", ""))


@dataclass(frozen=True)
class SubjectLength:
    """The longest rendered subject among the rows looked at, and its row."""

    row_number: int
    length: int
    rows_checked: int

    @property
    def too_long(self) -> bool:
        return self.length > SUBJECT_MAX


def longest_subject(subjects: Iterable[tuple[int, str]]) -> SubjectLength | None:
    """The longest of (row number, rendered subject) pairs; None when there is none."""
    best: tuple[int, int] | None = None
    checked = 0
    for number, subject in subjects:
        checked += 1
        if best is None or len(subject) > best[1]:
            best = (number, len(subject))
    return SubjectLength(best[0], best[1], checked) if best else None


def _has_tags(text: str) -> bool:
    return "{{" in text or "{%" in text


def content_warnings(
    source: TemplateSource, *, rendered_subjects: Iterable[tuple[int, str]] | None = None
) -> list[ContentWarning]:
    """Every content warning for a template, in a fixed order.

    The subject's length is that of the rendered subjects given, (row number, subject) of the
    rows previewed; without them, that of the source only when it has no tags (then it renders
    as written): the source of a templated subject says nothing about what recipients see."""
    found: list[ContentWarning] = []
    scan = _Scan()
    if source.html:
        scan.feed(source.html)
        scan.close()
    bodies = (source.html or "") + (source.text or "")
    has_unsubscribe = "unsubscribe_url" in bodies or any(
        "unsubscribe" in link.lower() for link in scan.links
    )
    if not has_unsubscribe:
        found.append(
            ContentWarning(
                Check.NO_UNSUBSCRIBE,
                "no unsubscribe link: add a link whose address contains 'unsubscribe'",
            )
        )
    if source.html and (size := len(source.html.encode("utf-8"))) > GMAIL_CLIP_BYTES:
        found.append(
            ContentWarning(
                Check.HTML_TOO_LARGE,
                f"HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB",
            )
        )
    for src in scan.images_without_alt:
        found.append(ContentWarning(Check.IMAGE_WITHOUT_ALT, f"image {src} has no alt text"))
    for link in sorted({link for link in scan.links if link.lower().startswith("http://")}):
        found.append(ContentWarning(Check.PLAIN_HTTP_LINK, f"{link} is plain http://, use https"))
    if source.text is None:
        found.append(
            ContentWarning(Check.NO_TEXT_PART, "no text part: one is derived from the HTML")
        )
    subject = source.subject.strip()
    if not subject:
        found.append(ContentWarning(Check.SUBJECT_EMPTY, "the subject is empty"))
    elif rendered_subjects is not None:
        longest = longest_subject(rendered_subjects)
        if longest is not None and longest.too_long:
            found.append(
                ContentWarning(
                    Check.SUBJECT_TOO_LONG,
                    f"the subject renders to {longest.length} characters (row "
                    f"{longest.row_number}, the longest of {longest.rows_checked} rows "
                    f"previewed); keep it under {SUBJECT_MAX}",
                )
            )
    elif not _has_tags(subject) and len(subject) > SUBJECT_MAX:
        found.append(
            ContentWarning(
                Check.SUBJECT_TOO_LONG,
                f"the subject is {len(subject)} characters; keep it under {SUBJECT_MAX}",
            )
        )
    return found
