"""Results: the aggregates the charts draw, computed in SQL, and the SQL they are built from.

Every aggregate returns grouped rows (at most a few per day, status, reason, domain or engine),
never the deliveries themselves. Each reads one index range in the index's own order (see the
indexes on `deliveries` in tables.py): SQLite groups by sorting, so a GROUP BY the index does
not serve would sort every row of the range. The one expression SQL spells differently per
backend (the position of a character) is a small construct compiled per dialect below; the
scope's conditions (`scoped`) are shared with the ledger's queries (`ledger_queries.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from outreach_core.adapters.store.tables import deliveries, engines, runs, workflows
from outreach_core.domain.result_figures import Scope
from outreach_core.domain.states import DeliveryStatus

SECONDS_PER_DAY = 86_400

#: statuses whose reason explains a refusal (reply codes, provider errors)
ERROR_STATUSES = (DeliveryStatus.FAILED, DeliveryStatus.DEFERRED, DeliveryStatus.UNKNOWN)


# --- dialect helpers ---------------------------------------------------------------------


class char_position(FunctionElement):
    """1-based position of `needle` in `text`, 0 when absent: char_position(text, needle)."""

    type = sa.Integer()
    inherit_cache = True
    name = "char_position"


@compiles(char_position, "sqlite")
def _position_sqlite(element: char_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(char_position, "postgresql")
def _position_postgresql(element: char_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


class no_seek(FunctionElement):
    """`column` unchanged, but not a term SQLite seeks an index by (a unary `+`): where
    another index is known to be the better start (SQLite's planner, without histograms,
    takes every range to be equally selective)."""

    inherit_cache = True
    name = "no_seek"

    @property
    def type(self) -> Any:  # the column's own type, so comparisons bind values alike
        return self.clauses.clauses[0].type


@compiles(no_seek, "sqlite")
def _no_seek_sqlite(element: no_seek, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


@compiles(no_seek, "postgresql")
def _no_seek_postgresql(element: no_seek, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


def reason_word(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The reason's first word (`no_mx` of `no_mx: no MX record`): what charts group by."""
    colon = char_position(column, ":")
    return sa.case((colon > 0, sa.func.substr(column, 1, colon - 1)), else_=column)


def domain_of(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The part after the @ of a normalised address."""
    return sa.func.substr(column, char_position(column, "@") + 1)


def latency_bucket(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Latency rounded down to 1 ms under 100 ms, 10 ms under 1 s, 100 ms under 10 s, else 1 s:
    a few hundred buckets per run at most, so percentiles are computed from grouped rows."""
    return sa.case(
        (column < 100, column),
        (column < 1_000, (column // 10) * 10),
        (column < 10_000, (column // 100) * 100),
        else_=(column // 1_000) * 1_000,
    )


# --- scope ------------------------------------------------------------------------------


#: the engine that took the message, else the run's (rows recorded before the column existed)
delivery_engine = sa.func.coalesce(deliveries.c.engine_id, runs.c.engine_id)


def _runs_where(condition: ColumnElement[bool]) -> sa.Select[Any]:
    """Ids of the runs matching `condition`: a few hundred rows, read once per statement."""
    return sa.select(runs.c.id).where(condition)


def scoped(
    query: sa.Select[Any],
    scope: Scope,
    *,
    outcome_time: ColumnElement[Any] = deliveries.c.updated_at,
) -> sa.Select[Any]:
    """The scope as conditions on deliveries' own columns only (workflow and run engine as
    `run_id IN (runs ...)`), so an index holding updated_at, engine_id and run_id answers a
    filtered aggregate without reading the rows or joining every row to its run."""
    query = query.where(outcome_time >= scope.start, outcome_time < scope.end)
    if scope.workflow_id is not None:
        query = query.where(
            deliveries.c.run_id.in_(_runs_where(runs.c.workflow_id == scope.workflow_id))
        )
    if scope.engine_id is not None:
        # the engine's own rows; the run's engine only for rows recorded without one
        query = query.where(
            sa.or_(
                deliveries.c.engine_id == scope.engine_id,
                sa.and_(
                    deliveries.c.engine_id.is_(None),
                    deliveries.c.run_id.in_(_runs_where(runs.c.engine_id == scope.engine_id)),
                ),
            )
        )
    return query


# --- aggregates ---------------------------------------------------------------------------


#: every status, listed so a (status, updated_at) index is read as one range per status
ALL_STATUSES = [str(s) for s in DeliveryStatus]


def status_counts_in_windows(
    conn: Connection, *, end: datetime, starts: dict[str, datetime]
) -> dict[str, dict[str, int]]:
    """Deliveries per status whose outcome time is in [start, end), for each named start:
    {window name: {status: count}}. One count per window: a bare COUNT over a range of the
    (status, updated_at) index is cheaper than one scan evaluating a CASE per row."""
    found: dict[str, dict[str, int]] = {}
    for name, start in starts.items():
        rows = conn.execute(
            sa.select(deliveries.c.status, sa.func.count())
            .where(
                deliveries.c.status.in_(ALL_STATUSES),
                deliveries.c.updated_at >= start,
                deliveries.c.updated_at < end,
            )
            .group_by(deliveries.c.status)
        )
        found[name] = {str(status): int(n) for status, n in rows}
    return found


#: day queries per statement: one round trip for a range of days, well under SQLite's limit of
#: 500 terms in a compound SELECT
DAYS_PER_STATEMENT = 100


def per_day(
    days: Sequence[tuple[int, datetime, datetime]], build: Callable[[int, Scope], sa.Select[Any]]
) -> Iterator[sa.CompoundSelect[Any] | sa.Select[Any]]:
    """The per-day queries `build(day index, day scope)`, UNION ALL'ed in chunks."""
    for first in range(0, len(days), DAYS_PER_STATEMENT):
        chunk = [
            build(index, Scope(start, end))
            for index, start, end in days[first : first + DAYS_PER_STATEMENT]
        ]
        yield chunk[0] if len(chunk) == 1 else sa.union_all(*chunk)


def counts_by_day(
    conn: Connection, scope: Scope, days: Sequence[tuple[int, datetime, datetime]]
) -> list[tuple[int, str, int]]:
    """(day index, status, count) for each local day [start, end) given (UTC bounds).

    One small query per day (UNION ALL'ed into one statement): a local day's bounds are
    computed with the zone's rules in Python (DST included), so SQL needs no time-zone support
    and no per-row date expression, and each query is a range of the (status, updated_at)
    index.
    """

    def build(index: int, day: Scope) -> sa.Select[Any]:
        day = Scope(day.start, day.end, scope.workflow_id, scope.engine_id)
        return scoped(
            sa.select(sa.literal(index).label("day"), deliveries.c.status, sa.func.count())
            .select_from(deliveries)
            .where(deliveries.c.status.in_(ALL_STATUSES)),
            day,
        ).group_by(deliveries.c.status)

    return [
        (int(d), str(s), int(n))
        for query in per_day(days, build)
        for d, s, n in conn.execute(query)
    ]


def skipped_by_day_and_reason(
    conn: Connection, scope: Scope, days: Sequence[tuple[int, datetime, datetime]]
) -> list[tuple[int, str, int]]:
    """(day index, reason word, count) of the skipped deliveries of each local day."""
    word = reason_word(sa.func.coalesce(deliveries.c.reason, "unspecified")).label("word")

    def build(index: int, day: Scope) -> sa.Select[Any]:
        day = Scope(day.start, day.end, scope.workflow_id, scope.engine_id)
        return (
            scoped(
                sa.select(sa.literal(index).label("day"), word, sa.func.count()).select_from(
                    deliveries
                ),
                day,
            )
            .where(deliveries.c.status == DeliveryStatus.SKIPPED)
            .group_by(word)
        )

    return [
        (int(d), str(w), int(n))
        for query in per_day(days, build)
        for d, w, n in conn.execute(query)
    ]


def counts_by_domain(conn: Connection, scope: Scope) -> list[tuple[str | None, str, int]]:
    """(recipient domain, status, count); None for rows with no normalised address."""
    query = scoped(
        sa.select(deliveries.c.domain, deliveries.c.status, sa.func.count()).select_from(
            deliveries
        ),
        scope,
    ).group_by(deliveries.c.domain, deliveries.c.status)
    return [(d, str(s), int(n)) for d, s, n in conn.execute(query)]


def counts_by_engine(
    conn: Connection, scope: Scope, engine_ids: Sequence[int]
) -> list[tuple[int | None, str, int]]:
    """(engine id, status, count); rows recorded without an engine count under their run's.

    Rows with an engine are read from the (engine_id, status, updated_at) index, one range
    per engine and status; the few without one (written before the column existed) are
    grouped through their run, whose id the same index holds."""
    own_engine = scoped(
        sa.select(deliveries.c.engine_id, deliveries.c.status, sa.func.count())
        .select_from(deliveries)
        .where(
            deliveries.c.engine_id.in_(list(engine_ids)),
            deliveries.c.status.in_(ALL_STATUSES),
        ),
        scope,
    ).group_by(deliveries.c.engine_id, deliveries.c.status)
    found = [(int(e), str(s), int(n)) for e, s, n in conn.execute(own_engine)]
    legacy = scoped(
        sa.select(runs.c.engine_id, deliveries.c.status, sa.func.count())
        .select_from(deliveries.join(runs, runs.c.id == deliveries.c.run_id))
        .where(deliveries.c.engine_id.is_(None), deliveries.c.status.in_(ALL_STATUSES)),
        scope,
    ).group_by(runs.c.engine_id, deliveries.c.status)
    found += [(None if e is None else int(e), str(s), int(n)) for e, s, n in conn.execute(legacy)]
    return found


def error_counts(conn: Connection, scope: Scope) -> list[tuple[int | None, str, str, int]]:
    """(reply code, reason word, status, count) of failed, deferred and unknown deliveries."""
    word = reason_word(sa.func.coalesce(deliveries.c.reason, "unspecified")).label("word")
    query = (
        scoped(
            sa.select(
                deliveries.c.reply_code, word, deliveries.c.status, sa.func.count()
            ).select_from(deliveries),
            scope,
        )
        .where(deliveries.c.status.in_(ERROR_STATUSES))
        .group_by(deliveries.c.reply_code, word, deliveries.c.status)
    )
    return [
        (None if c is None else int(c), str(w), str(s), int(n))
        for c, w, s, n in conn.execute(query)
    ]


def runs_in_scope(conn: Connection, scope: Scope, *, limit: int) -> list[sa.Row[Any]]:
    """The newest runs created in the scope's range (workflow and run engine filters apply),
    with their workflow name: id, workflow_id, workflow, status, created_at."""
    query = (
        sa.select(
            runs.c.id,
            runs.c.workflow_id,
            workflows.c.name.label("workflow"),
            runs.c.status,
            runs.c.created_at,
        )
        .join(workflows, workflows.c.id == runs.c.workflow_id)
        .where(runs.c.created_at >= scope.start, runs.c.created_at < scope.end)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    if scope.workflow_id is not None:
        query = query.where(runs.c.workflow_id == scope.workflow_id)
    if scope.engine_id is not None:
        query = query.where(runs.c.engine_id == scope.engine_id)
    return list(conn.execute(query))


def latency_buckets(conn: Connection, run_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(run id, latency bucket in ms, count) of the sends with a measured latency."""
    if not run_ids:
        return []
    bucket = latency_bucket(deliveries.c.latency_ms).label("bucket")
    query = (
        sa.select(deliveries.c.run_id, bucket, sa.func.count())
        .where(deliveries.c.run_id.in_(run_ids), deliveries.c.latency_ms.is_not(None))
        .group_by(deliveries.c.run_id, bucket)
    )
    return [(int(r), int(b), int(n)) for r, b, n in conn.execute(query)]


def run_status_reasons(conn: Connection, run_id: int) -> list[tuple[str, str | None, int]]:
    """(status, reason word, count) of one run's deliveries: what its funnel is built from."""
    word = reason_word(deliveries.c.reason).label("word")
    query = (
        sa.select(deliveries.c.status, word, sa.func.count())
        .where(deliveries.c.run_id == run_id)
        .group_by(deliveries.c.status, word)
    )
    return [(str(s), w, int(n)) for s, w, n in conn.execute(query)]


def engine_names(conn: Connection) -> dict[int, str]:
    """Engine display names by id (names only: never a URL or a secret)."""
    return {int(i): str(n) for i, n in conn.execute(sa.select(engines.c.id, engines.c.name))}
