"""The Results page's figures: the filter, the models the charts draw, and the pure decisions
that turn the ledger's grouped rows into them.

A local day is cut at its zone's midnights (DST days last 23 or 25 hours), the top domains
are kept by name and the rest summed, percentiles come from latency buckets, and a run's
funnel from its (status, reason) counts: small functions tested without a database. The
store groups in SQL (`adapters/store/result_aggregates.py`, `ledger_queries.py`) and the use
cases that read it live in `services/results.py`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from outreach_core.domain.states import DeliveryStatus, SkipReason

#: outcomes the charts show, in stacking order (pending/sending are not outcomes yet);
#: cancelled last: never attempted, by a user's decision rather than the row's
OUTCOMES = ("sent", "failed", "deferred", "unknown", "skipped", "cancelled")
#: domains shown by name; the rest are summed as OTHER
TOP_DOMAINS = 20
OTHER = "(other)"
NO_ADDRESS = "(no valid address)"
#: the latency percentiles each run shows
PERCENTILES = (50, 90, 99)
#: statuses a KPI counts as failed: every attempt that did not end sent
KPI_FAILED = ("failed", "deferred", "unknown")

#: skip reasons that mean the address itself was unusable: the funnel's "valid" step
ADDRESS_REASONS = frozenset(
    {
        SkipReason.INVALID_SYNTAX,
        SkipReason.NO_MX,
        SkipReason.NULL_MX,
        SkipReason.NO_DOMAIN,
        SkipReason.MX_UNRESOLVABLE,
        SkipReason.PRIVATE_ADDRESS,
        SkipReason.DNS_ERROR,
        SkipReason.DUPLICATE,
        SkipReason.SUPPRESSED,
    }
)


# --- models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which deliveries an aggregate reads: outcome time in [start, end), optional workflow
    and engine (the engine that took the message, else the run's engine for older rows)."""

    start: datetime
    end: datetime
    workflow_id: int | None = None
    engine_id: int | None = None


class ResultsFilter(BaseModel):
    """What the Results page reads: local days [start, end] in `timezone`, workflow, engine."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date
    timezone: str = "UTC"
    workflow_id: int | None = None
    engine_id: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ResultsFilter:
        if self.end < self.start:
            raise ValueError(
                f"date range: the end ({self.end}) is before the start ({self.start}); "
                "pick an end on or after the start"
            )
        return self

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone) if self.timezone != "UTC" else UTC

    def scope(self) -> Scope:
        """The UTC instants of local midnight at `start` and after `end`."""
        return Scope(
            start=local_midnight(self.start, self.zone),
            end=local_midnight(self.end + timedelta(days=1), self.zone),
            workflow_id=self.workflow_id,
            engine_id=self.engine_id,
        )


class Kpi(BaseModel):
    """Outcomes of the last `days` days; failed counts failed, deferred and unknown; bounced
    and replied count the deliveries sent in the window that came back so (at any time)."""

    days: int
    sent: int
    failed: int
    skipped: int
    bounced: int = 0
    replied: int = 0

    @property
    def delivery_rate(self) -> float | None:
        """Sent among attempted (sent + failed); None when nothing was attempted."""
        attempted = self.sent + self.failed
        return self.sent / attempted if attempted else None

    @property
    def reply_rate(self) -> float | None:
        """Replied among delivered (sent - hard bounced); None when nothing was delivered."""
        delivered = self.sent - self.bounced
        return self.replied / delivered if delivered > 0 else None

    @property
    def bounce_rate(self) -> float | None:
        """Hard bounced among sent; None when nothing was sent."""
        return self.bounced / self.sent if self.sent else None


class DayCount(BaseModel):
    """Deliveries of one local day with one outcome (`skipped: <reason>` for skipped)."""

    day: date
    outcome: str
    count: int


class GroupCount(BaseModel):
    """Deliveries of one group (domain or engine name) with one status."""

    group: str
    status: str
    count: int


class ErrorCount(BaseModel):
    """Refused deliveries by reply code (or reason, when the engine gave no code)."""

    label: str
    status: str
    count: int


class LatencyRow(BaseModel):
    """Send latency percentiles of one run, in ms (to within the bucket width)."""

    run_id: int
    run: str
    sends: int
    p50: int
    p90: int
    p99: int


class FunnelStep(BaseModel):
    """One step of a run's funnel and how many deliveries reached it."""

    step: str
    count: int


class ResultsData(BaseModel):
    """Everything the Results page charts for one filter."""

    filter: ResultsFilter
    by_day: list[DayCount]
    by_domain: list[GroupCount]
    by_engine: list[GroupCount]
    errors: list[ErrorCount]
    latency: list[LatencyRow]
    runs: list[tuple[int, str]] = Field(description="(run id, label) of the runs in range")


class LedgerRow(BaseModel):
    """One delivery as the ledger lists it (the engine by name, never its URL)."""

    delivery_id: int
    run_id: int
    #: the workflow step (1: the workflow's own message)
    step: int = 1
    workflow: str
    engine: str
    email: str
    status: str
    reason: str
    reply_code: int | None
    attempts: int
    latency_ms: int | None
    updated_at: datetime
    sent_at: datetime | None
    #: what came back (`Feedback`) and when
    feedback: str | None = None
    feedback_at: datetime | None = None


class LedgerPage(BaseModel):
    """One page of the ledger, with the total matches and the page count."""

    rows: list[LedgerRow]
    total: int
    page: int
    pages: int


# --- pure decisions ----------------------------------------------------------------------


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The UTC instant at which `day` begins in `zone`."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def local_days(first: date, last: date, zone: tzinfo) -> list[tuple[int, datetime, datetime]]:
    """Each local day from `first` to `last` as (date ordinal, UTC start, UTC end).

    Days are cut at the zone's midnights, so a DST day lasts 23 or 25 hours and half-hour
    zones are exact; SQL then counts each day as a plain time range.
    """
    days = []
    day = first
    while day <= last:
        following = day + timedelta(days=1)
        days.append((day.toordinal(), local_midnight(day, zone), local_midnight(following, zone)))
        day = following
    return days


def day_counts(
    statuses: Iterable[tuple[int, str, int]], skipped: Iterable[tuple[int, str, int]]
) -> list[DayCount]:
    """Per-day rows: outcomes other than skipped by status, skipped split by reason."""
    rows = [
        DayCount(day=date.fromordinal(d), outcome=s, count=n)
        for d, s, n in statuses
        if s in OUTCOMES and s != DeliveryStatus.SKIPPED
    ]
    rows += [
        DayCount(day=date.fromordinal(d), outcome=f"skipped: {w}", count=n) for d, w, n in skipped
    ]
    return sorted(rows, key=lambda r: (r.day, outcome_order(r.outcome)))


def outcome_order(outcome: str) -> tuple[int, str]:
    """Stacking order: sent, failed, deferred, unknown, skipped reasons alphabetically, then
    cancelled."""
    base = outcome.split(":", 1)[0]
    return (OUTCOMES.index(base) if base in OUTCOMES else len(OUTCOMES), outcome)


def top_groups(
    rows: Iterable[tuple[str | None, str, int]], *, top: int = TOP_DOMAINS, none_label: str
) -> list[GroupCount]:
    """The `top` groups with the most deliveries by name, every other one summed as OTHER."""
    totals: dict[str, int] = defaultdict(int)
    by_key: dict[tuple[str, str], int] = defaultdict(int)
    for group, status, n in rows:
        if status not in OUTCOMES:
            continue
        name = none_label if group is None or group == "" else group
        totals[name] += n
        by_key[(name, status)] += n
    ranked = sorted(totals, key=lambda g: (-totals[g], g))
    kept = set(ranked[:top])
    folded: dict[tuple[str, str], int] = defaultdict(int)
    for (name, status), n in by_key.items():
        folded[(name if name in kept else OTHER, status)] += n
    order = {name: i for i, name in enumerate([*ranked[:top], OTHER])}
    return [
        GroupCount(group=g, status=s, count=n)
        for (g, s), n in sorted(folded.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))
    ]


def error_label(reply_code: int | None, word: str) -> str:
    """`550` when the engine gave a code, else the reason's word (`transient`, `interrupted
    mid-send`: a reason without a colon is cut at its first `;`)."""
    return str(reply_code) if reply_code is not None else word.split(";", 1)[0]


def error_counts(rows: Iterable[tuple[int | None, str, str, int]]) -> list[ErrorCount]:
    """(reply code, reason word, status, n) folded by label, the most frequent first."""
    folded: dict[tuple[str, str], int] = defaultdict(int)
    for code, word, status, n in rows:
        folded[(error_label(code, word), status)] += n
    return [
        ErrorCount(label=label, status=status, count=n)
        for (label, status), n in sorted(folded.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def percentile(buckets: Sequence[tuple[int, int]], pct: float) -> int:
    """Nearest-rank percentile of (value, count) buckets: the smallest value with at least
    `pct`% of the counts at or below it."""
    ordered = sorted(buckets)
    total = sum(n for _, n in ordered)
    if total == 0:
        raise ValueError("percentile of no values")
    rank = max(1, -(-total * pct // 100))  # ceil without floats drifting
    seen = 0
    for value, n in ordered:
        seen += n
        if seen >= rank:
            return value
    return ordered[-1][0]


def funnel(rows: Iterable[tuple[str, str | None, int]]) -> list[FunnelStep]:
    """audience → valid address → rendered → sent, from one run's (status, reason word, n)."""
    audience = unusable = unrendered = sent = 0
    for status, word, n in rows:
        audience += n
        if status == DeliveryStatus.SKIPPED and word in ADDRESS_REASONS:
            unusable += n
        elif word == SkipReason.RENDER_ERROR:
            unrendered += n
        if status == DeliveryStatus.SENT:
            sent += n
    valid = audience - unusable
    return [
        FunnelStep(step="audience", count=audience),
        FunnelStep(step="valid", count=valid),
        FunnelStep(step="rendered", count=valid - unrendered),
        FunnelStep(step="sent", count=sent),
    ]


def funnel_run(run_ids: Sequence[int], sent: Mapping[int, int]) -> int | None:
    """The run a funnel shows first: the newest (`run_ids` newest first) that sent at least
    one message; the newest when none did; None without runs."""
    for run_id in run_ids:
        if sent.get(run_id, 0) > 0:
            return run_id
    return run_ids[0] if run_ids else None


def kpi(days: int, by_status: Mapping[str, int], feedback: Mapping[str, int] | None = None) -> Kpi:
    """The KPI of one window from its deliveries per status and, of its sent deliveries, the
    count per feedback (`bounced`, `replied`, ...)."""
    feedback = feedback or {}
    return Kpi(
        days=days,
        sent=by_status.get("sent", 0),
        failed=sum(by_status.get(s, 0) for s in KPI_FAILED),
        skipped=by_status.get("skipped", 0),
        bounced=feedback.get("bounced", 0),
        replied=feedback.get("replied", 0),
    )


def latency_rows(
    buckets: Iterable[tuple[int, int, int]], labels: dict[int, str]
) -> list[LatencyRow]:
    """Percentiles per run (oldest first, so the chart reads left to right in time)."""
    per_run: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for run_id, bucket, n in buckets:
        per_run[run_id].append((bucket, n))
    return [
        LatencyRow(
            run_id=run_id,
            run=labels.get(run_id, f"run {run_id}"),
            sends=sum(n for _, n in per_run[run_id]),
            p50=percentile(per_run[run_id], 50),
            p90=percentile(per_run[run_id], 90),
            p99=percentile(per_run[run_id], 99),
        )
        for run_id in sorted(per_run)
    ]
