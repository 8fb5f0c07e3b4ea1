"""Dashboard access in a real browser (Debian's chromium): off loopback and without a login
nothing is served; on loopback a page whose name resolves to 127.0.0.1 (DNS rebinding) gets
the refusal; with a password login a sender reaches the Suppressions and Audit pages
(screenshots in test-artifacts/screenshots/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core.domain.access import hash_password
from outreach_core.domain.models import Feedback, SuppressionReason
from outreach_core.services import compliance
from outreach_core.services.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    READY,
    SCREENSHOTS,
    launched_chromium,
    open_test_workspace,
    opened_page,
    send_run,
    serve_app,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo sent once, a bounce, an unsubscribe and two manual suppressions."""
    folder = tmp_path_factory.mktemp("access") / "data"
    ws = open_test_workspace(folder)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        send_run(ws, workflow)
        compliance.record_event(
            ws,
            compliance.ProviderEvent(
                provider="sendgrid", feedback=Feedback.BOUNCED, email="bounced@example.com"
            ),
        )
        for email, reason in [
            ("left@example.org", SuppressionReason.UNSUBSCRIBED),
            ("do-not-mail@example.com", SuppressionReason.MANUAL),
            ("no.thanks@example.net", SuppressionReason.MANUAL),
        ]:
            compliance.suppress(ws, email, reason=reason, actor="ann")
    finally:
        ws.close()
    return folder


#: the attacker's name, resolved by this browser to 127.0.0.1 as a rebinding DNS server would
ATTACKER = "attacker.example"


@pytest.fixture(scope="module")
def browser(chromium_path: str, data: Path) -> Iterator[object]:
    """Started after `data`: the demo run uses asyncio.run, which Playwright's loop forbids.
    Its resolver maps ATTACKER to 127.0.0.1 (and nothing else): no real DNS is asked."""
    rules = f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1"
    with launched_chromium(chromium_path, (rules,)) as chromium:
        yield chromium


@pytest.fixture
def page(browser) -> Iterator[object]:
    with opened_page(browser, timeout_ms=30_000, viewport={"width": 1400, "height": 1100}) as page:
        yield page


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_exposed_dashboard_without_login_serves_no_page(
    page, data: Path, dns_server: DnsServer
) -> None:
    """Verify server.address 0.0.0.0 and no login: Home and a deep link both show the refusal
    and nothing of the workspace."""
    with serve_app(data, nameserver=dns_server.nameserver, address="0.0.0.0") as url:
        for path in ("/", "/send", "/suppressions"):
            page.goto(url + path)
            page.wait_for_selector(READY)
            page.get_by_text("Sign-in required").wait_for()
            # The title and the explanation arrive as separate deltas: wait for the second
            # before reading the page, or the body can be caught between them.
            page.locator("[data-testid='stAlert']").get_by_text(
                "OUTREACH_DASHBOARD_USERS"
            ).wait_for()
            page.wait_for_selector(READY)
            body = page.inner_text("body")
            assert "Send now" not in body and "bounced@example.com" not in body
        _shot(page, "access-refused.png")


def test_rebinding_page_gets_the_refusal_while_loopback_stays_open(
    page, data: Path, dns_server: DnsServer, tmp_path: Path
) -> None:
    """Verify the open dashboard (127.0.0.1, no login) answers http://attacker.example:PORT/
    (a name resolving to 127.0.0.1) with the refusal and none of the workspace, and that the
    same browser still opens http://127.0.0.1:PORT/ without a login."""
    with serve_app(data, nameserver=dns_server.nameserver) as url:
        port = url.rsplit(":", 1)[1]
        for path in ("/", "/engines", "/suppressions"):
            page.goto(f"http://{ATTACKER}:{port}{path}")
            page.wait_for_selector(READY)
            page.get_by_text("Sign-in required").wait_for()
            page.locator("[data-testid='stAlert']").get_by_text("names another host").wait_for()
            page.wait_for_selector(READY)
            body = page.inner_text("body")
            assert f"http://127.0.0.1:{port}/ on this machine" in body
            # Nothing of the workspace: no page title, no data, no database caption.
            assert not page.get_by_role("heading", name="Engines").count()
            assert not page.get_by_role("heading", name="Suppressions").count()
            for secret in ("bounced@example.com", "do-not-mail@example.com", "Database:"):
                assert secret not in body
        shot = tmp_path / "rebinding-refused.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 0
        _shot(page, "access-rebinding-refused.png")

        page.goto(f"{url}/suppressions")
        page.get_by_role("heading", name="Suppressions").wait_for()
        page.wait_for_selector(READY)
        page.locator('[data-testid="stDataFrame"]').wait_for()
        assert "Sign-in required" not in page.inner_text("body")
        page.goto(f"http://localhost:{port}/engines")
        page.get_by_role("heading", name="Engines").wait_for()
        page.wait_for_selector(READY)
        assert "Database:" in page.inner_text('[data-testid="stSidebar"]')


def test_signed_in_sender_sees_suppressions_and_audit(
    page, data: Path, dns_server: DnsServer
) -> None:
    """Verify a password sign-in, then the Suppressions and Audit pages with their data."""
    users = f"ann:sender:{hash_password('ann-browser-pw')}"
    with serve_app(
        data,
        nameserver=dns_server.nameserver,
        address="0.0.0.0",
        extra={"OUTREACH_DASHBOARD_USERS": users},
    ) as url:
        page.goto(url)
        page.wait_for_selector(READY)
        page.get_by_label("User name", exact=True).fill("ann")
        page.get_by_label("Password", exact=True).fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("The user name or the password is wrong.").wait_for()
        page.get_by_label("Password", exact=True).fill("ann-browser-pw")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Overview").wait_for()
        assert "Signed in as ann (sender)" in page.inner_text('[data-testid="stSidebar"]')

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Suppressions").click()
        page.get_by_role("heading", name="Suppressions").wait_for()
        page.wait_for_selector(READY)
        page.locator('[data-testid="stDataFrame"]').wait_for()
        metric = page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()
        assert metric == "4"
        _shot(page, "suppressions.png")

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Audit").click()
        page.get_by_role("heading", name="Audit").wait_for()
        page.wait_for_selector(READY)
        page.locator('[data-testid="stDataFrame"]').wait_for()
        _shot(page, "audit.png")
