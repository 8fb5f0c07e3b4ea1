"""What the pages hand to the browser for contact data: the HTML preview's frame (sandboxed,
fetching nothing) and `plain`, which keeps markdown in a message from being acted on."""

from __future__ import annotations

import html
import re

import pytest

from outreach_core.ui.views import PREVIEW_CSP, plain, sandboxed_frame


def inner_document(frame: str) -> str:
    """The document the sandboxed iframe shows (its srcdoc, unescaped)."""
    match = re.fullmatch(
        r'<iframe sandbox="" srcdoc="([^"]*)" title="HTML preview" [^>]*></iframe>', frame
    )
    assert match, frame
    return html.unescape(match.group(1))


@pytest.mark.parametrize(
    "body",
    [
        '<p>Hi</p><img src="https://evil.example/i.png">',
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        'content="default-src *"></head><body><p>Hi</p></body></html>',
        '  <!doctype html>\n<p>Hi"</p>',
    ],
)
def test_preview_document_starts_with_a_policy_that_fetches_nothing(body: str) -> None:
    """Verify the policy comes before anything of the body (after its doctype, if any), so a
    later policy in the body can only narrow it, and the frame grants nothing."""
    document = inner_document(sandboxed_frame(body))
    meta = f'<meta http-equiv="Content-Security-Policy" content="{PREVIEW_CSP}">'
    before, found, after = document.partition(meta)
    assert found
    assert before.strip().lower() in ("", "<!doctype html>")
    assert before + after == body
    assert "default-src 'none'" in PREVIEW_CSP and "img-src data:" in PREVIEW_CSP


def test_plain_escapes_what_markdown_and_streamlit_would_act_on() -> None:
    """Verify a markdown image, a link, a color directive, LaTeX and HTML come out with every
    special character escaped: nothing of it opens an image, a link, a color or a tag."""
    value = "[x](https://evil.example) ![i](https://evil.example/i.png) :red[y] $x$ <b>*z*</b>"
    escaped = plain(value)
    assert re.sub(r"\\(.)", r"\1", escaped) == value  # only backslashes were added
    assert not re.search(r"(?<!\\)[\[\]()!<>*:$]", escaped)
    assert plain("line one\nline two") == "line one  \nline two"
