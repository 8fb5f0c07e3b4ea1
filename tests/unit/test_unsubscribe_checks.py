"""The unsubscribe findings of a workflow: each case, their severity and wording, and their
agreement with the List-Unsubscribe headers a run really adds."""

from __future__ import annotations

import pytest

from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.domain.unsubscribe_checks import (
    Severity,
    UnsubscribeCheck,
    UnsubscribeFinding,
    unsubscribe_findings,
)
from outreach_core.domain.unsubscribe_links import list_unsubscribe_headers

HTTPS = "https://example.com/unsubscribe"
HTTP = "http://example.com/unsubscribe"
MAILTO = "unsub@example.com"
WITH_LINK = TemplateSource("Hi", '<p>Hi</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>', None)
WITHOUT_LINK = TemplateSource("Hi", "<p>Hi</p>", "Hi")

WARN, INFO = Severity.WARNING, Severity.INFO
NONE, ONE_CLICK = UnsubscribeCheck.NO_UNSUBSCRIBE, UnsubscribeCheck.NO_ONE_CLICK
NOT_READ, NO_LINK = UnsubscribeCheck.MAILTO_NOT_READ, UnsubscribeCheck.NO_VISIBLE_LINK


def findings(
    url: str | None = None,
    mailto: str | None = None,
    template: TemplateSource | None = WITH_LINK,
    *,
    mailbox: bool = True,
) -> list[UnsubscribeFinding]:
    options = SendOptions(unsubscribe_base_url=url, unsubscribe_mailto=mailto)
    return unsubscribe_findings(options, template, mailbox_configured=mailbox)


def checks(found: list[UnsubscribeFinding]) -> list[tuple[UnsubscribeCheck, Severity]]:
    return [(f.check, f.severity) for f in found]


@pytest.mark.parametrize(
    ("url", "mailto", "template", "mailbox", "expected"),
    [
        # everything set and read: nothing to say
        (HTTPS, MAILTO, WITH_LINK, True, []),
        (HTTPS, None, WITH_LINK, False, []),
        # neither form: no header at all (the template's link cannot work either)
        (None, None, WITH_LINK, True, [(NONE, WARN)]),
        (None, None, WITHOUT_LINK, False, [(NONE, WARN)]),
        # http base URL: a header, but no one-click
        (HTTP, None, WITH_LINK, True, [(ONE_CLICK, WARN)]),
        (HTTP, MAILTO, WITH_LINK, True, [(ONE_CLICK, WARN)]),
        # mailto only: no one-click; unread when no mailbox is configured
        (None, MAILTO, WITH_LINK, True, [(ONE_CLICK, WARN)]),
        (None, MAILTO, WITH_LINK, False, [(ONE_CLICK, WARN), (NOT_READ, WARN)]),
        (HTTPS, MAILTO, WITH_LINK, False, [(NOT_READ, WARN)]),
        # a base URL and no visible link: information, after the warnings
        (HTTPS, None, WITHOUT_LINK, True, [(NO_LINK, INFO)]),
        (HTTP, MAILTO, WITHOUT_LINK, False, [(ONE_CLICK, WARN), (NOT_READ, WARN), (NO_LINK, INFO)]),
        # the template not known: no link check
        (HTTPS, None, None, True, []),
    ],
)
def test_findings_for_each_combination(
    url: str | None,
    mailto: str | None,
    template: TemplateSource | None,
    mailbox: bool,
    expected: list[tuple[UnsubscribeCheck, Severity]],
) -> None:
    assert checks(findings(url, mailto, template, mailbox=mailbox)) == expected


@pytest.mark.parametrize(
    "template",
    [
        TemplateSource("Hi", None, "Stop: {{ unsubscribe_url }}"),
        TemplateSource("Hi", "<a href='{{unsubscribe_url}}'>stop</a>", "no link here"),
        TemplateSource(
            "Hi", "{% if unsubscribe_url %}<a href='{{ unsubscribe_url }}'>x</a>{% endif %}", None
        ),
    ],
    ids=["text-only", "html-only", "conditional"],
)
def test_a_link_in_either_body_part_counts(template: TemplateSource) -> None:
    assert findings(HTTPS, template=template) == []


@pytest.mark.parametrize(
    "template",
    [
        # in the subject only: not a link the reader can click
        TemplateSource("{{ unsubscribe_url }}", "<p>Hi</p>", None),
        # another variable whose name merely contains it
        TemplateSource("Hi", "{{ old_unsubscribe_url }} {{ unsubscribe_urls }}", None),
        # a template that does not compile is still checked
        TemplateSource("Hi", "{% if %}", None),
    ],
    ids=["subject", "longer-name", "broken"],
)
def test_anything_else_is_no_visible_link(template: TemplateSource) -> None:
    assert checks(findings(HTTPS, template=template)) == [(NO_LINK, INFO)]


def test_each_message_says_what_is_wrong_and_what_to_do() -> None:
    (nothing,) = findings()
    assert "no List-Unsubscribe header" in nothing.message
    assert "Gmail and Yahoo" in nothing.message and "https://" in nothing.message
    assert str(nothing).startswith("warning: No unsubscribe is set")

    (plain,) = findings(HTTP)
    assert HTTP in plain.message and "List-Unsubscribe-Post" in plain.message
    assert "Use an https:// address" in plain.message

    (mailto_only, unread) = findings(mailto=MAILTO, mailbox=False)
    assert "Only a mailto" in mailto_only.message and "https://" in mailto_only.message
    assert MAILTO in unread.message and "will not be processed" in unread.message
    assert "OUTREACH_UNSUBSCRIBE_IMAP_URL" in unread.message

    (no_link,) = findings(HTTPS, template=WITHOUT_LINK)
    assert "{{ unsubscribe_url }}" in no_link.message
    assert str(no_link).startswith("info: ")


@pytest.mark.parametrize("url", [None, HTTP, HTTPS])
@pytest.mark.parametrize("mailto", [None, MAILTO])
def test_findings_agree_with_the_headers_a_run_adds(url: str | None, mailto: str | None) -> None:
    """No header <-> NO_UNSUBSCRIBE; a header without one-click <-> NO_ONE_CLICK."""
    headers = list_unsubscribe_headers(mailto=f"mailto:{mailto}" if mailto else None, url=url)
    found = {f.check for f in findings(url, mailto)}
    assert (NONE in found) == ("List-Unsubscribe" not in headers)
    assert (ONE_CLICK in found) == (
        "List-Unsubscribe" in headers and "List-Unsubscribe-Post" not in headers
    )
