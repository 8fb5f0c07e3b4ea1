"""What came back, in SQL: deliveries per outcome (`feedback`) per local day, engine and step,
the outcomes of the deliveries sent in a window, one run's, and the reply events listed.

The counts read the (feedback, feedback_at, status, updated_at, engine_id, run_id, step) index
(tables.py): one range per outcome value, every column read held in the index. The replies
are read from the (kind, at) index of `delivery_events`, newest first, and stop at the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.result_aggregates import (
    char_position,
    delivery_engine,
    no_seek,
    per_day,
    scoped,
)
from outreach_core.adapters.store.tables import deliveries, delivery_events, runs, workflows
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.reply_figures import FEEDBACK_ORDER
from outreach_core.domain.result_figures import Scope
from outreach_core.domain.states import DeliveryStatus

#: the outcome time the charts' scope applies to
_FEEDBACK_TIME = deliveries.c.feedback_at


def _with_feedback(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.where(deliveries.c.feedback.in_(list(FEEDBACK_ORDER)))


def feedback_by_day(
    conn: Connection, scope: Scope, days: Sequence[tuple[int, datetime, datetime]]
) -> list[tuple[int, str, int]]:
    """(day index, feedback, count) of the deliveries whose outcome came back on each local
    day [start, end) given (UTC bounds), one small query per day UNION ALL'ed."""

    def build(index: int, day: Scope) -> sa.Select[Any]:
        day = Scope(day.start, day.end, scope.workflow_id, scope.engine_id)
        query = sa.select(
            sa.literal(index).label("day"), deliveries.c.feedback, sa.func.count()
        ).select_from(deliveries)
        return scoped(_with_feedback(query), day, outcome_time=_FEEDBACK_TIME).group_by(
            deliveries.c.feedback
        )

    return [
        (int(d), str(f), int(n))
        for query in per_day(days, build)
        for d, f, n in conn.execute(query)
    ]


def feedback_by_engine(conn: Connection, scope: Scope) -> list[tuple[int | None, str, int]]:
    """(engine id, feedback, count): the engine that took the message, else its run's."""
    engine = delivery_engine.label("engine")
    query = sa.select(engine, deliveries.c.feedback, sa.func.count()).select_from(
        deliveries.join(runs, runs.c.id == deliveries.c.run_id)
    )
    query = scoped(_with_feedback(query), scope, outcome_time=_FEEDBACK_TIME)
    query = query.group_by(engine, deliveries.c.feedback)
    return [(None if e is None else int(e), str(f), int(n)) for e, f, n in conn.execute(query)]


def feedback_by_step(conn: Connection, scope: Scope) -> list[tuple[int, str, int]]:
    """(workflow step, feedback, count)."""
    query = sa.select(deliveries.c.step, deliveries.c.feedback, sa.func.count()).select_from(
        deliveries
    )
    query = scoped(_with_feedback(query), scope, outcome_time=_FEEDBACK_TIME)
    query = query.group_by(deliveries.c.step, deliveries.c.feedback)
    return [(int(s), str(f), int(n)) for s, f, n in conn.execute(query)]


#: how much earlier than its message was sent an answer may say it was written (the
#: writer's clock, a mailbox's Date header): the feedback index is read from the window's
#: start less this, so a reply dated a little before its message still counts
CLOCK_SKEW = timedelta(days=1)


def sent_feedback_in_windows(
    conn: Connection, *, end: datetime, starts: dict[str, datetime]
) -> dict[str, dict[str, int]]:
    """Of the deliveries sent with their outcome time in [start, end), how many came back
    with each feedback (whenever it came): {window name: {feedback: count}}.

    What came back for a message comes after it was sent, so each window reads the feedback
    index from its start (less CLOCK_SKEW) only, and checks status and send time in the index:
    the (status, updated_at) range would read every message sent in the window from the table.
    """
    found: dict[str, dict[str, int]] = {}
    for name, start in starts.items():
        sent_at = no_seek(deliveries.c.updated_at)
        rows = conn.execute(
            _with_feedback(
                sa.select(deliveries.c.feedback, sa.func.count()).where(
                    no_seek(deliveries.c.status) == DeliveryStatus.SENT,
                    sent_at >= start,
                    sent_at < end,
                    deliveries.c.feedback_at >= start - CLOCK_SKEW,
                )
            ).group_by(deliveries.c.feedback)
        )
        found[name] = {str(f): int(n) for f, n in rows}
    return found


def run_feedback(conn: Connection, run_id: int) -> dict[str, int]:
    """Of one run's sent deliveries, how many came back with each feedback."""
    rows = conn.execute(
        _with_feedback(
            sa.select(deliveries.c.feedback, sa.func.count()).where(
                deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.SENT
            )
        ).group_by(deliveries.c.feedback)
    )
    return {str(f): int(n) for f, n in rows}


# --- the reply events -----------------------------------------------------------------


def _events_in_scope(
    query: sa.Select[Any], scope: Scope, kind: FeedbackKind, contains: str | None
) -> sa.Select[Any]:
    query = scoped(query, scope, outcome_time=delivery_events.c.at).where(
        delivery_events.c.kind == kind.value
    )
    if contains:
        # a substring of the normalised address: replies are few, read from the (kind, at)
        # range, so no index on the address is needed
        query = query.where(char_position(deliveries.c.email_normalized, contains) > 0)
    return query


_EVENTS_FROM = delivery_events.join(deliveries, deliveries.c.id == delivery_events.c.delivery_id)


def replies(
    conn: Connection, scope: Scope, *, contains: str | None = None, limit: int
) -> list[sa.Row[Any]]:
    """The reply events in the scope's range (by when the reply was written), newest first:
    delivery id, run id, workflow, step, email, at, subject (the event's detail), evidence,
    engine id (the event's mailbox engine, else the delivery's)."""
    query = sa.select(
        deliveries.c.id.label("delivery_id"),
        deliveries.c.run_id,
        workflows.c.name.label("workflow"),
        deliveries.c.step,
        deliveries.c.email,
        delivery_events.c.at,
        delivery_events.c.detail.label("subject"),
        delivery_events.c.evidence,
        sa.func.coalesce(delivery_events.c.engine_id, delivery_engine).label("engine_id"),
    ).select_from(
        _EVENTS_FROM.join(runs, runs.c.id == deliveries.c.run_id).join(
            workflows, workflows.c.id == runs.c.workflow_id
        )
    )
    query = _events_in_scope(query, scope, FeedbackKind.REPLY, contains)
    query = query.order_by(delivery_events.c.at.desc(), delivery_events.c.id.desc()).limit(limit)
    return list(conn.execute(query))


def count_events(
    conn: Connection, scope: Scope, kind: FeedbackKind, *, contains: str | None = None
) -> int:
    """How many events of `kind` the scope holds (matching `contains`, if given)."""
    query = sa.select(sa.func.count()).select_from(_EVENTS_FROM)
    return int(conn.execute(_events_in_scope(query, scope, kind, contains)).scalar_one())
