"""Rows whose recipient domain DNS did not answer: they wait, pending, never taken as invalid.

A lookup that timed out or failed (`dns_error`: no resolver, SERVFAIL, silence) says nothing
about the address. The freeze keeps such a row `pending` with the reason
(`dns_error: DNS timeout for example.org`); a claim does not take it, and the run's owner looks
its domain up again in the batch loop (`services/sending/dns_recheck.py`). What each new answer
means for the rows that wait is decided here; when only waiting rows are left, the run pauses
for `DNS_RETRY_INTERVAL` and the daemon resumes it to look again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from outreach_core.domain.mx import DomainResult, DomainStatus, receives_mail
from outreach_core.domain.states import DnsWaitPolicy, SkipReason

#: how long a run whose unsent rows all wait for DNS pauses before it looks again; also the
#: least time between two lookups of the waiting domains while other rows are being sent
DNS_RETRY_INTERVAL = timedelta(minutes=1)
#: how the reason of a pending row that waits for DNS begins
WAITING_PREFIX = f"{SkipReason.DNS_ERROR}: "
#: how the status reason of a run paused for DNS begins
PAUSE_PREFIX = "DNS unavailable"
#: domains named in a pause reason; the rest are counted
_NAMED = 3


class DnsAction(StrEnum):
    """What becomes of the rows of one waiting domain after a lookup."""

    #: pending without a reason: the next claims send them
    SEND = "send"
    #: skipped with the reason (the domain cannot receive mail, or the policy says skip)
    SKIP = "skip"
    #: still pending with the reason: looked up again later
    WAIT = "wait"


@dataclass(frozen=True)
class DnsDecision:
    """One waiting domain's rows after a lookup: the action and their reason afterwards."""

    action: DnsAction
    reason: str | None


def waiting_reason(verdict: DomainResult) -> str:
    """A waiting row's reason: `dns_error: DNS timeout for example.org`."""
    return f"{WAITING_PREFIX}{verdict.reason or 'no answer'} for {verdict.domain}"


def is_waiting(reason: str | None) -> bool:
    """Whether a pending row with this reason waits for DNS."""
    return reason is not None and reason.startswith(WAITING_PREFIX)


def decide(
    verdict: DomainResult,
    *,
    policy: DnsWaitPolicy,
    waited: timedelta,
    wait_hours: float,
    test_environment: bool = False,
) -> DnsDecision:
    """The rows of `verdict.domain` after a new lookup, `waited` since the run froze them.

    An answer decides as at the freeze: valid sends (so does `private_address` in a test
    environment), `no_mx`/`null_mx`/`no_domain`/`mx_unresolvable`/`private_address` skip. A
    failure waits, until `wait_hours` have passed: then `policy` sends, skips or waits on.
    """
    if receives_mail(verdict.status, test_environment=test_environment):
        return DnsDecision(DnsAction.SEND, None)
    if verdict.status is not DomainStatus.DNS_ERROR:
        return DnsDecision(DnsAction.SKIP, f"{verdict.status}: {verdict.reason}")
    if waited < timedelta(hours=wait_hours) or policy is DnsWaitPolicy.WAIT:
        return DnsDecision(DnsAction.WAIT, waiting_reason(verdict))
    if policy is DnsWaitPolicy.SEND:
        return DnsDecision(DnsAction.SEND, None)
    return DnsDecision(
        DnsAction.SKIP, f"{waiting_reason(verdict)}; no answer within {wait_hours:g} h"
    )


def recheck_due(last_checked: datetime | None, now: datetime) -> bool:
    """Whether the waiting domains are looked up again now (never yet in this execution, or
    not for DNS_RETRY_INTERVAL): a resolver that times out then costs one timeout a minute,
    not one per batch."""
    return last_checked is None or now - last_checked >= DNS_RETRY_INTERVAL


def waiting_cause(reason: str) -> str:
    """`DNS timeout` from a waiting row's reason `dns_error: DNS timeout for example.org`."""
    return reason.removeprefix(WAITING_PREFIX).rsplit(" for ", 1)[0]


def pause_reason(waiting: Mapping[str, tuple[int, str]]) -> str | None:
    """Why a run pauses when only rows waiting for DNS are left, from domain -> (rows waiting,
    one of their reasons); None when no row waits.

    `DNS unavailable: 2 rows wait for example.org (DNS timeout)`.
    """
    if not waiting:
        return None
    rows = sum(count for count, _ in waiting.values())
    named = [
        f"{domain} ({waiting_cause(reason)})" for domain, (_, reason) in sorted(waiting.items())
    ]
    if len(named) == 1:
        where = named[0]
    else:
        more = f", and {len(named) - _NAMED} more" if len(named) > _NAMED else ""
        where = f"{len(named)} domains: " + ", ".join(named[:_NAMED]) + more
    counted = "1 row waits" if rows == 1 else f"{rows} rows wait"
    return f"{PAUSE_PREFIX}: {counted} for {where}"
