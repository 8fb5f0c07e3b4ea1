"""Results: what Home and the Results page show, read from the ledger's aggregates.

The store groups in SQL (`adapters/store/result_aggregates.py` for the charts,
`ledger_queries.py` for the ledger); the figures' models and every decision made on the
grouped rows (local days, top domains, percentiles, the funnel) are pure, in
`domain/result_figures.py`. Each use case here is one read transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from outreach_core.adapters.store import feedback_aggregates, ledger_queries
from outreach_core.adapters.store import result_aggregates as aggregates
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.reply_figures import outcome_funnel
from outreach_core.domain.result_figures import (
    NO_ADDRESS,
    FunnelStep,
    Kpi,
    LedgerPage,
    LedgerRow,
    ResultsData,
    ResultsFilter,
    day_counts,
    error_counts,
    funnel,
    funnel_run,
    kpi,
    latency_rows,
    local_days,
    top_groups,
)

#: runs whose latency percentiles are shown
LATENCY_RUNS = 30
LEDGER_PAGE_SIZE = 50
HISTORY_LIMIT = 500


def kpis(
    ws: Workspace, *, windows: Sequence[int] = (7, 30), now: datetime | None = None
) -> list[Kpi]:
    """Sent, failed and skipped over the last days of each window, and how many of the sent
    ones bounced or were replied to (the reply and bounce rates)."""
    now = now or utcnow()
    starts = {f"d{days}": now - timedelta(days=days) for days in windows}
    with ws.db.connect() as conn:
        found = aggregates.status_counts_in_windows(conn, end=now, starts=starts)
        came_back = feedback_aggregates.sent_feedback_in_windows(conn, end=now, starts=starts)
    return [kpi(days, found[f"d{days}"], came_back[f"d{days}"]) for days in windows]


def load(ws: Workspace, flt: ResultsFilter) -> ResultsData:
    """Every chart's data for the filter: one read transaction, every aggregate in SQL."""
    scope = flt.scope()
    days = local_days(flt.start, flt.end, flt.zone)
    with ws.db.connect() as conn:
        by_day = day_counts(
            aggregates.counts_by_day(conn, scope, days),
            aggregates.skipped_by_day_and_reason(conn, scope, days),
        )
        by_domain = top_groups(aggregates.counts_by_domain(conn, scope), none_label=NO_ADDRESS)
        names = aggregates.engine_names(conn)
        by_engine = top_groups(
            (
                (names.get(e, f"engine {e}") if e is not None else None, s, n)
                for e, s, n in aggregates.counts_by_engine(conn, scope, list(names))
            ),
            top=len(names) + 1,
            none_label="(none)",
        )
        errors = error_counts(aggregates.error_counts(conn, scope))
        in_range = aggregates.runs_in_scope(conn, scope, limit=LATENCY_RUNS)
        buckets = aggregates.latency_buckets(conn, [r.id for r in in_range])
    labels = {r.id: f"run {r.id} · {r.workflow}" for r in in_range}
    return ResultsData(
        filter=flt,
        by_day=by_day,
        by_domain=by_domain,
        by_engine=by_engine,
        errors=errors,
        latency=latency_rows(buckets, labels),
        runs=[(r.id, labels[r.id]) for r in in_range],
    )


def run_funnel(ws: Workspace, run_id: int) -> list[FunnelStep]:
    """One run's funnel: audience → valid → rendered → sent → delivered → replied."""
    with ws.db.connect() as conn:
        steps = funnel(aggregates.run_status_reasons(conn, run_id))
        return outcome_funnel(steps, feedback_aggregates.run_feedback(conn, run_id))


def default_funnel_run(ws: Workspace, run_ids: list[int]) -> int | None:
    """The newest of `run_ids` (newest first) that sent something (`funnel_run`)."""
    sent: dict[int, int] = {}
    with ws.db.connect() as conn:
        for run_id in run_ids:
            sent[run_id] = funnel(aggregates.run_status_reasons(conn, run_id))[-1].count
            if sent[run_id]:
                break
    return funnel_run(run_ids, sent)


def _ledger_row(row: object, names: dict[int, str]) -> LedgerRow:
    """A store row as the ledger shows it: the engine by name, no reason as ''."""
    data = dict(row._mapping)  # type: ignore[attr-defined]
    engine_id = data.pop("engine_id")
    return LedgerRow(
        delivery_id=data.pop("id"),
        engine=names.get(engine_id, "") if engine_id is not None else "",
        reason=data.pop("reason") or "",
        **data,
    )


def ledger(
    ws: Workspace,
    flt: ResultsFilter,
    *,
    email_prefix: str = "",
    status: str | None = None,
    reason: str | None = None,
    page: int = 1,
    page_size: int = LEDGER_PAGE_SIZE,
) -> LedgerPage:
    """One page of the ledger (newest first) in the filter's range, searched and filtered;
    a page past the end shows the last page."""
    if page < 1:
        raise ValueError(f"ledger page {page}: pages start at 1")
    filters = {"email_prefix": email_prefix.strip() or None, "status": status, "reason": reason}
    scope = flt.scope()
    with ws.db.connect() as conn:
        total = ledger_queries.ledger_count(conn, scope, **filters)
        pages = max(1, -(-total // page_size))
        page = min(page, pages)
        rows = ledger_queries.ledger_page(
            conn, scope, **filters, limit=page_size, offset=(page - 1) * page_size
        )
        names = aggregates.engine_names(conn)
    return LedgerPage(
        rows=[_ledger_row(r, names) for r in rows], total=total, page=page, pages=pages
    )


def recipient_history(ws: Workspace, email: str) -> list[LedgerRow]:
    """Every delivery to one address across runs, newest first."""
    with ws.db.connect() as conn:
        rows = ledger_queries.recipient_history(conn, email.strip(), limit=HISTORY_LIMIT)
        names = aggregates.engine_names(conn)
    return [_ledger_row(r, names) for r in rows]


def reason_kinds(ws: Workspace, flt: ResultsFilter, *, status: str | None = None) -> list[str]:
    """The reason words present in the ledger for the filter (and state, if given): what the
    ledger's Reason filter offers."""
    with ws.db.connect() as conn:
        return ledger_queries.reason_kinds(conn, flt.scope(), status=status)
