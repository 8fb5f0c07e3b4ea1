"""What came back after sending, as Results and the Replies page read it: outcomes per local
day, engine and step, and the replies themselves (who answered, when, to which step).

The store counts in SQL (`adapters/store/feedback_aggregates.py`); the models and decisions on
the grouped rows are pure (`domain/reply_figures.py`). Each use case is one read transaction.
"""

from __future__ import annotations

from outreach_core.adapters.store import feedback_aggregates as came_back
from outreach_core.adapters.store.result_aggregates import engine_names
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.reply_figures import (
    FeedbackData,
    RepliesList,
    Reply,
    evidence_label,
    feedback_days,
    feedback_groups,
    search_term,
    step_groups,
)
from outreach_core.domain.result_figures import ResultsFilter, local_days

#: the most replies one list shows (newest first); the CSV holds the same rows
REPLIES_LIMIT = 1000


def load_feedback(ws: Workspace, flt: ResultsFilter) -> FeedbackData:
    """Deliveries per outcome per local day, per engine and per step, for the filter (the
    range applies to when the outcome came back)."""
    scope = flt.scope()
    days = local_days(flt.start, flt.end, flt.zone)
    with ws.db.connect() as conn:
        by_day = feedback_days(came_back.feedback_by_day(conn, scope, days))
        names = engine_names(conn)
        by_engine = feedback_groups(
            (None if e is None else names.get(e, f"engine {e}"), f, n)
            for e, f, n in came_back.feedback_by_engine(conn, scope)
        )
        by_step = step_groups(came_back.feedback_by_step(conn, scope))
    return FeedbackData(by_day=by_day, by_engine=by_engine, by_step=by_step)


def list_replies(
    ws: Workspace, flt: ResultsFilter, *, search: str = "", limit: int = REPLIES_LIMIT
) -> RepliesList:
    """The replies written in the filter's range (workflow and engine filters apply), newest
    first, to addresses containing `search`; with the number of automatic replies of the same
    range, which are not listed."""
    scope = flt.scope()
    contains = search_term(search)
    with ws.db.connect() as conn:
        rows = came_back.replies(conn, scope, contains=contains, limit=limit)
        total = came_back.count_events(conn, scope, FeedbackKind.REPLY, contains=contains)
        auto = came_back.count_events(conn, scope, FeedbackKind.AUTO_REPLY, contains=contains)
        names = engine_names(conn)
    return RepliesList(
        rows=[
            Reply(
                delivery_id=r.delivery_id,
                run_id=r.run_id,
                workflow=r.workflow,
                step=r.step,
                email=r.email,
                at=r.at,
                subject=r.subject or "",
                evidence=evidence_label(r.evidence),
                engine="" if r.engine_id is None else names.get(r.engine_id, ""),
            )
            for r in rows
        ],
        total=total,
        auto_replies=auto,
    )
