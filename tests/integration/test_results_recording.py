"""A run against a real SMTP server records what the Results charts read: the reply code of
each refusal and the time the server took to accept each message."""

from __future__ import annotations

from datetime import UTC, datetime

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import result_aggregates
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.result_figures import ResultsFilter
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services import results
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end

from smtp_server import SmtpTestServer

#: the server answers this recipient's DATA after this long: its latency cannot be less
SLOW_S = 0.3


def test_refusals_keep_their_reply_code_and_sends_their_latency(workspace: Workspace) -> None:
    """Verify 550 and 452 refusals store their codes, accepted sends a latency at least the
    server's delay, and the Results aggregates read them back."""
    recipients = ["ok1@example.org", "ok2@example.org", "slow@example.org",
                  "refused@example.org", "full@example.org"]  # fmt: skip
    with SmtpTestServer() as server:
        server.handler.refuse_rcpt["refused@example.org"] = "550 5.1.1 no such user"
        server.handler.fail_rcpt_times["full@example.org"] = 99
        server.handler.fail_rcpt_reply["full@example.org"] = "452 4.2.2 mailbox full"
        server.handler.slow_data["slow@example.org"] = SLOW_S
        workflow = services.setup_workflow(
            workspace,
            name="codes",
            parsed=ParsedFile("c.csv", ["email"], "email", [{"email": r} for r in recipients]),
            template=TemplateSource("Hello", None, "Hello there"),
            engine_url=server.url,
            from_email="team@example.com",
            from_name="Team",
            # no scheduled retries: the 452 row stays deferred and the run completes
            options=SendOptions(rate=0, max_attempts=2, skip_mx=True, retry_lifetime_hours=0),
            actor="test",
        )
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
        run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

    assert run.status is RunStatus.COMPLETED
    history = {r.email: r for e in recipients for r in results.recipient_history(workspace, e)}
    assert (history["refused@example.org"].status, history["refused@example.org"].reply_code) == (
        DeliveryStatus.FAILED,
        550,
    )
    assert (history["full@example.org"].status, history["full@example.org"].reply_code) == (
        DeliveryStatus.DEFERRED,
        452,
    )
    sent = [history[e] for e in ("ok1@example.org", "ok2@example.org", "slow@example.org")]
    assert all(r.status == DeliveryStatus.SENT and r.latency_ms is not None for r in sent)
    assert history["slow@example.org"].latency_ms >= SLOW_S * 1000
    assert history["refused@example.org"].latency_ms is None

    today = datetime.now(UTC).date()
    data = results.load(workspace, ResultsFilter(start=today, end=today))
    assert {(e.label, e.status, e.count) for e in data.errors} == {
        ("550", "failed", 1),
        ("452", "deferred", 1),
    }
    [latency] = data.latency
    assert latency.sends == 3
    with workspace.db.connect() as conn:
        buckets = result_aggregates.latency_buckets(conn, [run_id])
    assert latency.p99 == max(bucket for _, bucket, _ in buckets)
