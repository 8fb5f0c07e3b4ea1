"""Whether a workflow's mail can be unsubscribed from, and whether the requests are processed.

Gmail and Yahoo require bulk senders to offer one-click unsubscribe: a List-Unsubscribe header
with an https URL plus `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058). What a
workflow's messages carry follows from its options (`unsubscribe.list_unsubscribe_headers`);
this module says, before anything is sent, what is missing or will not work. Pure, no I/O:
the caller says whether an unsubscribe mailbox is configured. A finding never blocks a send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource

#: the template variable that holds the recipient's own unsubscribe link
_LINK_VARIABLE = re.compile(r"\bunsubscribe_url\b")


class Severity(StrEnum):
    """How much a finding matters."""

    #: mail will break a mailbox provider's bulk-sender rule, or requests will go unanswered
    WARNING = "warning"
    #: it works, but could be better for the recipient
    INFO = "info"


class UnsubscribeCheck(StrEnum):
    """What a finding is about."""

    #: neither an unsubscribe URL nor a mailto: no List-Unsubscribe header at all
    NO_UNSUBSCRIBE = "no_unsubscribe"
    #: List-Unsubscribe without an https URL: no List-Unsubscribe-Post (one-click)
    NO_ONE_CLICK = "no_one_click"
    #: a mailto whose mailbox nobody reads: the requests are never processed
    MAILTO_NOT_READ = "mailto_not_read"
    #: a base URL, but the template shows no link: only the header offers unsubscribing
    NO_VISIBLE_LINK = "no_visible_link"


@dataclass(frozen=True)
class UnsubscribeFinding:
    """One finding, as a sentence that says what to do."""

    check: UnsubscribeCheck
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


def _is_https(url: str) -> bool:
    return url.lower().startswith("https://")


def _shows_link(template: TemplateSource) -> bool:
    """Whether a body part uses `unsubscribe_url`. A text search, not a compile: a template
    that does not compile is reported by the dry run itself and still gets this check."""
    return any(_LINK_VARIABLE.search(part or "") for part in (template.html, template.text))


def unsubscribe_findings(
    options: SendOptions, template: TemplateSource | None, *, mailbox_configured: bool
) -> list[UnsubscribeFinding]:
    """The unsubscribe findings for a workflow's options and template, warnings first.

    `mailbox_configured`: whether OUTREACH_UNSUBSCRIBE_IMAP_URL is set, so that the daemon reads
    the mailto's requests. `template` None (not known) skips the visible-link check.
    """
    url, mailto = options.unsubscribe_base_url, options.unsubscribe_mailto
    found: list[UnsubscribeFinding] = []
    if not url and not mailto:
        found.append(
            UnsubscribeFinding(
                UnsubscribeCheck.NO_UNSUBSCRIBE,
                Severity.WARNING,
                "No unsubscribe is set: messages will carry no List-Unsubscribe header, which "
                "Gmail and Yahoo require of bulk senders. Set the workflow's unsubscribe base "
                "URL to an https:// address served by `scheduler_daemon.py --http`.",
            )
        )
    elif url and not _is_https(url):
        found.append(
            UnsubscribeFinding(
                UnsubscribeCheck.NO_ONE_CLICK,
                Severity.WARNING,
                f"The unsubscribe base URL {url} is not https: no one-click unsubscribe header "
                "(List-Unsubscribe-Post) will be added, which Gmail and Yahoo require of bulk "
                "senders. Use an https:// address.",
            )
        )
    elif not url:
        found.append(
            UnsubscribeFinding(
                UnsubscribeCheck.NO_ONE_CLICK,
                Severity.WARNING,
                "Only a mailto unsubscribe is set: no one-click unsubscribe header "
                "(List-Unsubscribe-Post) will be added, which Gmail and Yahoo require of bulk "
                "senders. Also set an https:// unsubscribe base URL.",
            )
        )
    if mailto and not mailbox_configured:
        found.append(
            UnsubscribeFinding(
                UnsubscribeCheck.MAILTO_NOT_READ,
                Severity.WARNING,
                f"Unsubscribe requests mailed to {mailto} will not be processed: "
                "`OUTREACH_UNSUBSCRIBE_IMAP_URL` is not set, so no daemon reads that mailbox. "
                "Set it to the mailbox's imaps:// URL, or remove the mailto.",
            )
        )
    if url and template is not None and not _shows_link(template):
        found.append(
            UnsubscribeFinding(
                UnsubscribeCheck.NO_VISIBLE_LINK,
                Severity.INFO,
                "The template shows no unsubscribe link: recipients can unsubscribe only "
                "through their mail client's button. Add "
                '`<a href="{{ unsubscribe_url }}">Unsubscribe</a>` to the body.',
            )
        )
    return found
