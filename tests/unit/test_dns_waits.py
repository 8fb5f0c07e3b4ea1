"""Rows waiting for DNS: which rows wait, are sent or are skipped, given the new verdict, the
run's policy and how long they have waited; when to look again; the pause reason. No server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outreach_core.domain.dns_waits import (
    DNS_RETRY_INTERVAL,
    DnsAction,
    DnsDecision,
    decide,
    is_waiting,
    pause_reason,
    recheck_due,
    waiting_cause,
    waiting_reason,
)
from outreach_core.domain.mx import DomainResult, DomainStatus
from outreach_core.domain.states import DnsWaitPolicy

TIMEOUT = DomainResult("slow.example", DomainStatus.DNS_ERROR, None, "DNS timeout")
SERVFAIL = DomainResult("down.example", DomainStatus.DNS_ERROR, None, "DNS server failure")
VALID = DomainResult("ok.example", DomainStatus.VALID, "mx.ok.example")
NO_MX = DomainResult("bare.example", DomainStatus.NO_MX, None, "no MX and no A/AAAA record")
NO_DOMAIN = DomainResult("gone.example", DomainStatus.NO_DOMAIN, None, "domain does not exist")
NULL_MX = DomainResult("null.example", DomainStatus.NULL_MX, None, "null MX: accepts no mail")
HOUR = timedelta(hours=1)


@pytest.mark.parametrize("policy", list(DnsWaitPolicy))
@pytest.mark.parametrize("waited", [timedelta(0), 23 * HOUR, 24 * HOUR, 240 * HOUR])
def test_an_answer_decides_as_at_the_freeze_whatever_the_policy_and_the_wait(
    policy: DnsWaitPolicy, waited: timedelta
) -> None:
    """Verify a valid answer sends (reason cleared) and an answer that the domain cannot
    receive mail skips with the verdict's reason, under every policy and wait."""
    decide_now = {"policy": policy, "waited": waited, "wait_hours": 24.0}
    assert decide(VALID, **decide_now) == DnsDecision(DnsAction.SEND, None)
    assert decide(NO_MX, **decide_now) == DnsDecision(
        DnsAction.SKIP, "no_mx: no MX and no A/AAAA record"
    )
    assert decide(NO_DOMAIN, **decide_now) == DnsDecision(
        DnsAction.SKIP, "no_domain: domain does not exist"
    )
    assert decide(NULL_MX, **decide_now).action is DnsAction.SKIP


@pytest.mark.parametrize("policy", list(DnsWaitPolicy))
@pytest.mark.parametrize("waited", [timedelta(0), 23 * HOUR, 24 * HOUR - timedelta(seconds=1)])
def test_a_failed_lookup_waits_until_the_wait_is_over_whatever_the_policy(
    policy: DnsWaitPolicy, waited: timedelta
) -> None:
    """Verify a timeout or server failure within `dns_wait_hours` keeps the rows waiting,
    their reason naming the failure and the domain: never skipped, never sent."""
    assert decide(TIMEOUT, policy=policy, waited=waited, wait_hours=24) == DnsDecision(
        DnsAction.WAIT, "dns_error: DNS timeout for slow.example"
    )
    assert decide(SERVFAIL, policy=policy, waited=waited, wait_hours=24) == DnsDecision(
        DnsAction.WAIT, "dns_error: DNS server failure for down.example"
    )


@pytest.mark.parametrize(
    "policy, expected",
    [
        (
            DnsWaitPolicy.WAIT,
            DnsDecision(DnsAction.WAIT, "dns_error: DNS timeout for slow.example"),
        ),
        (DnsWaitPolicy.SEND, DnsDecision(DnsAction.SEND, None)),
        (
            DnsWaitPolicy.SKIP,
            DnsDecision(
                DnsAction.SKIP, "dns_error: DNS timeout for slow.example; no answer within 1.5 h"
            ),
        ),
    ],
)
@pytest.mark.parametrize("waited", [timedelta(hours=1.5), timedelta(days=30)])
def test_once_the_wait_is_over_the_policy_decides(
    policy: DnsWaitPolicy, expected: DnsDecision, waited: timedelta
) -> None:
    """Verify a lookup still failing after `dns_wait_hours` (exactly, or long after) waits on,
    sends or skips as the run's `on_dns_unanswered` says."""
    assert decide(TIMEOUT, policy=policy, waited=waited, wait_hours=1.5) == expected


def test_waiting_reasons_are_recognised_and_name_their_cause() -> None:
    """Verify the reason a waiting row carries is recognised as waiting (and no other reason
    is), and its cause can be read back for the pause reason."""
    reason = waiting_reason(TIMEOUT)
    assert reason == "dns_error: DNS timeout for slow.example"
    assert is_waiting(reason)
    assert waiting_cause(reason) == "DNS timeout"
    assert waiting_cause(waiting_reason(SERVFAIL)) == "DNS server failure"
    for other in (None, "", "no_mx: no MX", "deferred: 451 try later", "dns_errorish"):
        assert not is_waiting(other)


def test_waiting_domains_are_looked_up_again_at_most_once_per_interval() -> None:
    """Verify the first turn of an execution looks up, then not again before the interval."""
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert recheck_due(None, start)
    assert not recheck_due(start, start)
    assert not recheck_due(start, start + DNS_RETRY_INTERVAL - timedelta(seconds=1))
    assert recheck_due(start, start + DNS_RETRY_INTERVAL)


def test_pause_reason_names_the_waiting_rows_and_their_domains() -> None:
    """Verify no waiting row means no pause; one domain is named with its cause; many are
    counted, three named in order, the rest counted."""
    assert pause_reason({}) is None
    assert pause_reason({"slow.example": (1, waiting_reason(TIMEOUT))}) == (
        "DNS unavailable: 1 row waits for slow.example (DNS timeout)"
    )
    five = {
        f"d{n}.example": (2, f"dns_error: DNS server failure for d{n}.example") for n in range(5)
    }
    assert pause_reason(five) == (
        "DNS unavailable: 10 rows wait for 5 domains: d0.example (DNS server failure), "
        "d1.example (DNS server failure), d2.example (DNS server failure), and 2 more"
    )
