"""DNS failure is never a skip: rows whose domain could not be looked up wait, pending.

A loopback resolver (tests/dns_server.py) that is stopped, or silent for one name, and a
loopback SMTP sink (tests/smtp_server.py) that counts what each recipient got; on SQLite and
PostgreSQL. The run pauses naming DNS until a lookup answers; the daemon's pass
(`work_once`) resumes it when its `resume_at` has come.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import deliveries, runs
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Delivery, Run, SendOptions
from outreach_core.domain.states import DeliveryStatus, DnsWaitPolicy, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end, work_once
from tests.dns_server import MX_OK, NXDOMAIN, SERVFAIL, SILENT, DnsServer
from tests.fake_clock import HandClock

from conftest import cli_env, run_cli
from smtp_server import SmtpTestServer

DOMAINS = ("alpha.example", "beta.example", "gamma.example")
#: two recipients per domain
ADDRESSES = [f"{who}@{domain}" for domain in DOMAINS for who in ("ann", "bob")]
#: short, so a resolver that never answers costs little: tests wait for answers, not for time
DNS_TIMEOUT = "0.5"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def received(server: SmtpTestServer) -> Counter[str]:
    return Counter(r.lower() for item in server.handler.received for r in item.rcpt_tos)


def ledger(ws: Workspace, run_id: int) -> tuple[Run, list[Delivery]]:
    with ws.db.connect() as conn:
        return runs.get_run(conn, run_id), deliveries.list_deliveries(conn, run_id)


def stopped_resolver_port() -> int:
    """A loopback port where no resolver answers (a server was there and was stopped)."""
    server = DnsServer({}, default=MX_OK).start()
    port = server.port
    server.stop()
    return port


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    contacts = tmp_path / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        for address in ADDRESSES:
            writer.writerow([address, address.split("@")[0].title()])
    template = tmp_path / "tpl"
    template.mkdir()
    (template / "subject.txt").write_text("Hi {{ name }}")
    (template / "body.txt").write_text("Hello {{ name }}")
    return contacts, template


def test_send_with_the_resolver_down_pauses_and_the_daemon_sends_once_it_answers(
    workspace: Workspace, db_url: str, tmp_path: Path, smtp: SmtpTestServer
) -> None:
    """Verify `send` with a stopped resolver exits 1 with the run PAUSED naming DNS and every
    row pending (none skipped, nothing sent); a daemon pass before the resolver is back pauses
    it again; once the resolver answers, the daemon's pass completes it, each recipient once."""
    port = stopped_resolver_port()
    contacts, template = write_inputs(tmp_path)
    env = cli_env(
        tmp_path,
        OUTREACH_DATABASE_URL=db_url,
        OUTREACH_DNS_NAMESERVERS=f"127.0.0.1:{port}",
        OUTREACH_DNS_TIMEOUT=DNS_TIMEOUT,
        SMTP_URL=smtp.url,
    )
    sent = run_cli(
        tmp_path, "send", str(contacts), "--template", str(template), "--engine-env", "SMTP_URL",
        "--from", "Team <team@example.com>", "--rate", "0", env=env,
    )  # fmt: skip

    assert sent.returncode == 1, sent.stdout + sent.stderr
    run_id = int(sent.stdout.splitlines()[0].removeprefix("run: "))
    assert f"resume {run_id}" in sent.stderr
    run, rows = ledger(workspace, run_id)
    assert run.status is RunStatus.PAUSED
    assert (run.status_reason or "").startswith("DNS unavailable: 6 rows wait"), run
    assert run.resume_at is not None and run.worker_id is None
    assert [d.status for d in rows] == [DeliveryStatus.PENDING] * 6
    assert all((d.reason or "").startswith("dns_error: DNS timeout for ") for d in rows), rows
    assert rows[0].reason == "dns_error: DNS timeout for alpha.example"
    assert received(smtp) == Counter()

    # the resolver is still down when the pause is over: the lookup fails again, the run
    # pauses again, a new resume time ahead; nothing is skipped
    workspace.settings.dns_nameservers = f"127.0.0.1:{port}"
    workspace.settings.dns_timeout = float(DNS_TIMEOUT)
    [again] = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal(), now=run.resume_at)
    assert again.status is RunStatus.PAUSED
    assert (again.status_reason or "").startswith("DNS unavailable: 6 rows wait")
    assert again.resume_at is not None and again.resume_at > run.resume_at
    assert {d.status for d in ledger(workspace, run_id)[1]} == {DeliveryStatus.PENDING}

    resolver = DnsServer({}, default=MX_OK, port=port).start()
    try:
        # before its resume time the daemon leaves it alone
        assert work_once(workspace, worker_id=new_worker_id(), stop=StopSignal()) == []
        [done] = work_once(
            workspace, worker_id=new_worker_id(), stop=StopSignal(), now=again.resume_at
        )
    finally:
        resolver.stop()

    assert done.status is RunStatus.COMPLETED, done
    _, rows = ledger(workspace, run_id)
    assert {d.status for d in rows} == {DeliveryStatus.SENT}
    assert all(d.reason is None for d in rows)
    assert received(smtp) == Counter(ADDRESSES)


def test_one_domain_timing_out_waits_while_the_others_are_sent(
    workspace: Workspace, tmp_path: Path, smtp: SmtpTestServer
) -> None:
    """Verify a resolver silent for one domain of three: that domain's rows stay pending with
    the reason while the others are sent; the run pauses naming that domain, and once the
    domain answers the daemon's pass sends its rows: every recipient exactly once."""
    resolver = DnsServer({"gamma.example": SILENT}, default=MX_OK).start()
    try:
        workspace.settings.dns_nameservers = resolver.nameserver
        workspace.settings.dns_timeout = float(DNS_TIMEOUT)
        workflow = services.setup_workflow(
            workspace,
            name="partial",
            parsed=ParsedFile(
                "c.csv", ["email", "name"], "email", [{"email": a, "name": "N"} for a in ADDRESSES]
            ),
            template=TemplateSource("Hi {{ name }}", None, "Hello {{ name }}"),
            engine_url=smtp.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, batch_size=2),
            actor="test",
        )
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
        run = run_to_end(workspace, run_id, worker_id=new_worker_id(), stop=StopSignal())

        assert run.status is RunStatus.PAUSED
        assert run.status_reason is not None
        assert run.status_reason.startswith(
            "DNS unavailable: 2 rows wait for gamma.example (DNS timeout)"
        ), run.status_reason
        _, rows = ledger(workspace, run_id)
        by_status = {d.email: (d.status, d.reason) for d in rows}
        assert by_status == {
            **{a: (DeliveryStatus.SENT, None) for a in ADDRESSES[:4]},
            **{
                a: (DeliveryStatus.PENDING, "dns_error: DNS timeout for gamma.example")
                for a in ADDRESSES[4:]
            },
        }
        assert received(smtp) == Counter(ADDRESSES[:4])

        resolver.zones["gamma.example"] = MX_OK  # the domain answers now
        [done] = work_once(
            workspace, worker_id=new_worker_id(), stop=StopSignal(), now=run.resume_at
        )
    finally:
        resolver.stop()

    assert done.status is RunStatus.COMPLETED, done
    _, rows = ledger(workspace, run_id)
    assert {d.status for d in rows} == {DeliveryStatus.SENT}
    assert received(smtp) == Counter(ADDRESSES)


@pytest.mark.parametrize(
    "policy, gamma",
    [
        (DnsWaitPolicy.WAIT, (DeliveryStatus.PENDING, "dns_error: DNS timeout for gamma.example")),
        (DnsWaitPolicy.SEND, (DeliveryStatus.SENT, None)),
        (
            DnsWaitPolicy.SKIP,
            (
                DeliveryStatus.SKIPPED,
                "dns_error: DNS timeout for gamma.example; no answer within 24 h",
            ),
        ),
    ],
)
def test_after_the_wait_the_policy_decides_and_an_nxdomain_answer_skips(
    workspace: Workspace,
    smtp: SmtpTestServer,
    policy: DnsWaitPolicy,
    gamma: tuple[DeliveryStatus, str | None],
) -> None:
    """Verify rows of a domain silent for longer than `dns_wait_hours` (the run's clock moved
    on 25 h) are kept waiting, sent or skipped as `on_dns_unanswered` says, while a waiting
    domain whose server failed at first and then answers NXDOMAIN is skipped as no_domain."""
    clock = HandClock(datetime(2030, 6, 3, 8, 0, tzinfo=UTC))
    resolver = DnsServer({"gamma.example": SILENT, "beta.example": SERVFAIL}, default=MX_OK).start()
    try:
        workspace.settings.dns_nameservers = resolver.nameserver
        workspace.settings.dns_timeout = float(DNS_TIMEOUT)
        workflow = services.setup_workflow(
            workspace,
            name=f"policy {policy}",
            parsed=ParsedFile("c.csv", ["email"], "email", [{"email": a} for a in ADDRESSES]),
            template=TemplateSource("Hi", None, "Hello"),
            engine_url=smtp.url,
            from_email="team@example.com",
            from_name="Team",
            options=SendOptions(rate=0, on_dns_unanswered=policy),
            actor="test",
        )
        run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="test")
        run = run_to_end(
            workspace, run_id, worker_id=new_worker_id(), stop=StopSignal(), clock=clock
        )
        assert run.status is RunStatus.PAUSED
        assert run.status_reason == (
            "DNS unavailable: 4 rows wait for 2 domains: beta.example (DNS server failure), "
            "gamma.example (DNS timeout); looked up again from 08:01:00 UTC"
        )
        assert received(smtp) == Counter(ADDRESSES[:2])

        resolver.zones["beta.example"] = NXDOMAIN
        clock.advance(hours=25)
        [done] = work_once(workspace, worker_id=new_worker_id(), stop=StopSignal(), clock=clock)
    finally:
        resolver.stop()

    _, rows = ledger(workspace, run_id)
    outcome = {d.email: (d.status, d.reason) for d in rows}
    assert outcome == {
        **{a: (DeliveryStatus.SENT, None) for a in ADDRESSES[:2]},
        **{a: (DeliveryStatus.SKIPPED, "no_domain: domain does not exist") for a in ADDRESSES[2:4]},
        **{a: gamma for a in ADDRESSES[4:]},
    }
    expected = RunStatus.PAUSED if policy is DnsWaitPolicy.WAIT else RunStatus.COMPLETED
    assert done.status is expected, done
    sent = [a for a in ADDRESSES if outcome[a][0] is DeliveryStatus.SENT]
    assert received(smtp) == Counter(sent)


def test_send_flags_set_the_wait_and_the_policy_and_refuse_a_wait_of_zero(
    workspace: Workspace, db_url: str, tmp_path: Path
) -> None:
    """Verify `send --dns-wait-hours 2 --on-dns-unanswered skip` stores both on the run;
    `--dns-wait-hours 0` and an unknown policy are refused (exit 2) naming the flag."""
    contacts, template = write_inputs(tmp_path)
    env = cli_env(tmp_path, OUTREACH_DATABASE_URL=db_url)
    base = ("send", str(contacts), "--template", str(template), "--engine", "outbox:///tmp/x")
    queued = run_cli(
        tmp_path, *base, "--queue", "--dns-wait-hours", "2", "--on-dns-unanswered", "skip",
        env=env,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    run_id = int(queued.stdout.splitlines()[0].removeprefix("run: "))
    run, _ = ledger(workspace, run_id)
    assert (run.options.dns_wait_hours, run.options.on_dns_unanswered) == (2, DnsWaitPolicy.SKIP)

    for flag, value in (("--dns-wait-hours", "0"), ("--on-dns-unanswered", "later")):
        refused = run_cli(tmp_path, *base, "--queue", flag, value, env=env)
        assert refused.returncode == 2
        assert flag in refused.stderr
