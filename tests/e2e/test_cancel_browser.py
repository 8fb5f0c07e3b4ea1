"""Cancel a run from the Send page in Chromium while it sends to a slow SMTP sink.

The run is executed in this process (as the dashboard's background thread would); the click
goes through the real dashboard, whose cancel marks the unsent rows `cancelled`: none is left
`pending`, and the page shows how many were cancelled. A screenshot goes to
test-artifacts/screenshots/cancel.png.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from tests.conftest import wait_for
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    SCREENSHOTS,
    launched_chromium,
    open_from_overview,
    open_test_workspace,
    opened_page,
    serve_app,
)
from tests.smtp_server import SmtpTestServer

pytestmark = pytest.mark.browser

ROWS = 1000


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    """50 ms per message: 1,000 recipients take about 25 s, so the click lands mid-run."""
    with SmtpTestServer() as smtp:
        smtp.handler.data_delay = 0.05
        yield smtp


def _metric_value(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_cancel_on_the_send_page_leaves_no_pending_row(
    tmp_path: Path, chromium_path: str, dns_server: DnsServer, sink: SmtpTestServer
) -> None:
    data = tmp_path / "data"
    ws = open_test_workspace(data)
    try:
        workflow = services.setup_workflow(
            ws,
            name="slow",
            parsed=ParsedFile(
                "c.csv", ["email"], "email", [{"email": f"r{n}@example.org"} for n in range(ROWS)]
            ),
            template=TemplateSource("Hello", None, "Hello there"),
            engine_url=sink.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, concurrency=2, batch_size=10, skip_mx=True),
            actor="test",
        )
        with serve_app(data, nameserver=dns_server.nameserver) as app_url:
            run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
            executor = services.execute_in_background(ws, run_id)
            wait_for(lambda: len(sink.handler.received) >= 20, what="20 messages at the sink")
            with (
                launched_chromium(chromium_path) as browser,
                opened_page(browser, viewport={"width": 1400, "height": 1100}) as page,
            ):
                open_from_overview(page, app_url, "Send")
                cancel = page.get_by_role("button", name="Cancel", exact=True)
                cancel.wait_for()
                assert services.run_summary(ws, run_id).run.status is RunStatus.SENDING
                cancel.click()
                page.get_by_text("CANCELLED", exact=False).first.wait_for()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
                    ".some(m => m.innerText.includes('Cancelled')"
                    " && !/Cancelled\\s*0\\s*$/.test(m.innerText))"
                )
                executor.join(timeout=30)
                assert not executor.is_alive(), "the executor did not stop after the cancel"
                summary = services.run_summary(ws, run_id)
                # the progress fragment re-reads the ledger every second: rows the batch held
                # when the cancel came show as pending until the executor records them
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
                    ".some(m => /Pending\\s*0\\s*$/.test(m.innerText))"
                )
                assert _metric_value(page, "Cancelled") == str(summary.counts.cancelled)
                assert _metric_value(page, "Pending") == "0"
                page.wait_for_timeout(1500)  # the progress bar's animation settles
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "cancel.png"))
        with ws.db.connect() as conn:
            ledger = deliveries.list_deliveries(conn, run_id)
    finally:
        ws.close()

    assert summary.run.status is RunStatus.CANCELLED
    statuses = Counter(d.status for d in ledger)
    assert DeliveryStatus.PENDING not in statuses and DeliveryStatus.SENDING not in statuses
    assert statuses[DeliveryStatus.CANCELLED] > 0 and len(ledger) == ROWS
    reasons = {d.reason for d in ledger if d.status is DeliveryStatus.CANCELLED}
    assert len(reasons) == 1 and reasons.pop().startswith("cancelled: by dashboard at ")
    assert len(sink.handler.received) == statuses[DeliveryStatus.SENT]
