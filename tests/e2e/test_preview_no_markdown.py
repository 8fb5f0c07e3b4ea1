"""The Templates preview with a hostile contact value: a cell holding markdown (a link, a remote
image) is drawn as plain text, never as markdown, and the HTML preview loads nothing from the
network (checked in Chromium against a loopback server that counts what it is asked for)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core.adapters.contact_files import read_contacts_file
from outreach_core.domain.models import SendOptions
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.workflows import setup_workflow
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    HOME,
    READY,
    launched_chromium,
    open_test_workspace,
    opened_page,
    serve_app,
)

PAYLOAD = "[x](https://evil.example) ![i](https://evil.example/i.png)"


def seed(data: Path, first_name: str, *, html: str = "<p>Hello {{ first_name }}</p>") -> None:
    """One audience of one contact named `first_name`, a template that shows the name in its
    subject, HTML and text, and an outbox engine."""
    contacts = data.parent / "contacts.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    contacts.write_text(f'email,first_name\nann@example.com,"{first_name}"\n', encoding="utf-8")
    ws = open_test_workspace(data)
    try:
        setup_workflow(
            ws,
            name="hostile",
            parsed=read_contacts_file(contacts),
            template=TemplateSource(
                subject="Hi {{ first_name }}", html=html, text="Hi {{ first_name }}"
            ),
            engine_url=f"outbox://{(data / 'outbox').resolve()}",
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(skip_mx=True),
            actor="test",
        )
    finally:
        ws.close()


def markdown_sources(at: AppTest) -> list[str]:
    """Every text the page hands to Streamlit's markdown renderer (markdown, captions, titles
    and the bodies of error, warning, info and success boxes)."""
    found = [m.value for m in (*at.markdown, *at.caption, *at.title, *at.header, *at.subheader)]
    for boxes in (at.error, at.warning, at.info, at.success):
        found += [box.value for box in boxes]
    return found


def test_contact_markdown_is_shown_as_text_and_html_only_in_a_sandbox(data_dir: Path) -> None:
    """Verify a contact value with a markdown link and a remote image reaches no markdown
    element: the subject is plain text, the HTML preview is a sandboxed iframe whose policy
    fetches nothing, and the value inside it is escaped text, not a link or an image."""
    seed(data_dir, PAYLOAD)
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page("pages/templates.py").run()
    assert not at.exception, [e.value for e in at.exception]

    assert not [text for text in markdown_sources(at) if "evil.example" in text]
    assert f"Hi {PAYLOAD}" in [t.value for t in at.text]
    (frame,) = at.get("iframe")
    srcdoc = frame.proto.srcdoc
    assert 'iframe sandbox=""' in srcdoc
    assert "default-src &#x27;none&#x27;" in srcdoc and "img-src data:" in srcdoc
    # the rendered HTML, escaped twice (the template's autoescape, then srcdoc): the payload
    # is characters, with no <a> or <img> made of it
    assert "evil.example" in srcdoc
    assert "&lt;img" not in srcdoc and "&lt;a " not in srcdoc


class _Counting(BaseHTTPRequestHandler):
    """Answers every GET with a 1x1 GIF and remembers the path asked for."""

    seen: list[str]

    def do_GET(self) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        body = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server standing in for the attacker's: its URL and the paths it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_preview_fetches_nothing_in_chromium(
    data_dir: Path, chromium_path: str, dns_server: DnsServer, tracker: tuple[str, list[str]]
) -> None:
    """Verify in Chromium: a contact value with a markdown image and a template with a remote
    image make no request to their server when the Templates page previews the row, while the
    preview itself is drawn (its text is inside the sandboxed frame)."""
    url, seen = tracker
    seed(
        data_dir,
        f"![i]({url}/markdown-image.png) [x]({url}/markdown-link)",
        html=f'<p>Hello {{{{ first_name }}}}</p><img src="{url}/template-image.png" alt="t">'
        f'<link rel="stylesheet" href="{url}/style.css">',
    )
    with (
        serve_app(data_dir, nameserver=dns_server.nameserver) as app_url,
        launched_chromium(chromium_path) as browser,
        opened_page(browser, timeout_ms=30_000) as page,
    ):
        page.goto(f"{app_url}/templates")
        page.wait_for_selector(READY)
        page.get_by_role("heading", name="Preview", exact=True).wait_for()
        outer = page.frame_locator('[data-testid="stIFrame"]')
        preview = outer.frame_locator('iframe[title="HTML preview"]')
        preview.get_by_text("Hello ![i]").wait_for()
        page.get_by_test_id("stText").get_by_text(f"Hi ![i]({url}/markdown-image.png)").wait_for()
        page.wait_for_timeout(1500)  # time for any image or stylesheet request to arrive
    assert seen == []
