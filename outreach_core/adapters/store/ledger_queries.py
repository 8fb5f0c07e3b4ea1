"""The ledger in SQL: one page of deliveries, searched by address prefix and filtered by
state and reason, its reason words, and one recipient's history.

A page is read in an index's order and stops (LIMIT/OFFSET); a search is two ranges of the
address indexes, a reason filter ranges of the reason index. The scope's conditions and the
per-dialect constructs come from `result_aggregates.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from outreach_core.adapters.store.result_aggregates import (
    char_position,
    delivery_engine,
    no_seek,
    reason_word,
    scoped,
)
from outreach_core.adapters.store.tables import deliveries, runs, workflows
from outreach_core.domain.result_figures import Scope

#: what a ledger row shows: the engine as an id, named by the caller (never a URL)
_LEDGER_COLUMNS = (
    deliveries.c.id,
    deliveries.c.run_id,
    deliveries.c.step,
    workflows.c.name.label("workflow"),
    delivery_engine.label("engine_id"),
    deliveries.c.email,
    deliveries.c.status,
    deliveries.c.reason,
    deliveries.c.reply_code,
    deliveries.c.attempts,
    deliveries.c.latency_ms,
    deliveries.c.updated_at,
    deliveries.c.sent_at,
    deliveries.c.feedback,
    deliveries.c.feedback_at,
)


def _ledger_from() -> sa.FromClause:
    return deliveries.join(runs, runs.c.id == deliveries.c.run_id).join(
        workflows, workflows.c.id == runs.c.workflow_id
    )


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix` (its last
    character incremented): `email >= prefix AND email < bound` is an index range scan on
    both backends, where LIKE 'prefix%' is not (SQLite's LIKE ignores case, PostgreSQL's
    needs a pattern index)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def reason_is(column: ColumnElement[Any], word: str) -> ColumnElement[bool]:
    """`reason_word(column) == word` as ranges of the reason index: the reason is the word
    itself, or starts with `word:` (every string in [`word:`, `word;`), `;` following `:`).
    Like the email search, this needs text compared in code-point order: SQLite's default,
    and on PostgreSQL the column's own "C" collation (`tables.ordered_text`), whatever the
    database's locale. A word holding a colon is no reason's word, so it matches nothing."""
    if ":" in word:
        return sa.false()
    return sa.or_(column == word, sa.and_(column >= f"{word}:", column < f"{word};"))


def _before_word(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The bound below which lie the reasons of words before `column`'s: `word:` for
    `word: detail` (the block [`word:`, `word;`) holds only that word), the reason itself when
    it has no colon."""
    colon = char_position(column, ":")
    return sa.case(
        (colon > 0, sa.func.substr(column, 1, colon, type_=sa.Text)),
        else_=column,
    )


def _ledger_filters(
    query: sa.Select[Any],
    scope: Scope,
    *,
    email_prefix: str | None,
    status: str | None,
    reason: str | None,
) -> sa.Select[Any]:
    # With a search, the two address index ranges find the matches: SQLite, estimating every
    # range alike, would otherwise walk the whole time range and read each row's address.
    outcome_time = no_seek(deliveries.c.updated_at) if email_prefix else deliveries.c.updated_at
    query = scoped(query, scope, outcome_time=outcome_time)
    if email_prefix:
        lowered = email_prefix.lower()
        query = query.where(
            sa.or_(
                sa.and_(
                    deliveries.c.email_normalized >= lowered,
                    deliveries.c.email_normalized < prefix_upper_bound(lowered),
                ),
                sa.and_(
                    deliveries.c.email >= email_prefix,
                    deliveries.c.email < prefix_upper_bound(email_prefix),
                ),
            )
        )
    if status:
        query = query.where(deliveries.c.status == status)
    if reason:
        query = query.where(reason_is(deliveries.c.reason, reason))
    return query


def reason_kinds(conn: Connection, scope: Scope, *, status: str | None = None) -> list[str]:
    """The reason words present among the scope's deliveries (of `status`, if given), sorted.

    A loose scan of the reason index, backwards: each step seeks the last in-scope reason
    before the previous word's block (`_before_word`), so the cost is a seek per distinct word,
    not a read of every delivery in range. Backwards, the index gives each reason's newest rows
    first, so a range ending today finds its first in-scope row at once; the scope's other
    columns are in the index too, so no row is read."""

    def last_before(bound: ColumnElement[Any] | None) -> ColumnElement[Any]:
        query = scoped(
            sa.select(deliveries.c.reason), scope, outcome_time=no_seek(deliveries.c.updated_at)
        ).where(deliveries.c.reason.is_not(None))
        if status:
            query = query.where(deliveries.c.status == status)
        if bound is not None:
            query = query.where(deliveries.c.reason < bound)
        return query.order_by(deliveries.c.reason.desc()).limit(1).scalar_subquery()

    found = sa.select(last_before(None).label("reason")).cte("reasons_found", recursive=True)
    found = found.union_all(
        sa.select(last_before(_before_word(found.c.reason))).where(found.c.reason.is_not(None))
    )
    word = reason_word(found.c.reason)
    query = sa.select(word).where(found.c.reason.is_not(None)).distinct().order_by(word)
    return [str(w) for (w,) in conn.execute(query)]


def ledger_count(
    conn: Connection,
    scope: Scope,
    *,
    email_prefix: str | None = None,
    status: str | None = None,
    reason: str | None = None,
) -> int:
    """How many deliveries match the ledger's filters."""
    query = _ledger_filters(
        sa.select(sa.func.count()).select_from(deliveries),
        scope,
        email_prefix=email_prefix,
        status=status,
        reason=reason,
    )
    return int(conn.execute(query).scalar_one())


def ledger_page(
    conn: Connection,
    scope: Scope,
    *,
    email_prefix: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    limit: int,
    offset: int,
) -> list[sa.Row[Any]]:
    """One page of deliveries matching the filters, newest outcome first (the updated_at
    index's order, so a page reads its rows and stops).

    A search is read from the address indexes instead: the page's ids are picked first from
    the matches' (updated_at, id), then only those rows are read, so a short prefix matching
    many rows sorts index entries rather than whole rows."""
    filters = {"email_prefix": email_prefix, "status": status, "reason": reason}
    order = (deliveries.c.updated_at.desc(), deliveries.c.id.desc())
    columns = sa.select(*_LEDGER_COLUMNS).select_from(_ledger_from())
    if email_prefix:
        ids = _ledger_filters(sa.select(deliveries.c.id), scope, **filters)
        page_ids = ids.order_by(*order).limit(limit).offset(offset).scalar_subquery()
        query = columns.where(deliveries.c.id.in_(page_ids)).order_by(*order)
    else:
        query = _ledger_filters(columns, scope, **filters).order_by(*order)
        query = query.limit(limit).offset(offset)
    return list(conn.execute(query))


def recipient_history(conn: Connection, email: str, *, limit: int) -> list[sa.Row[Any]]:
    """Every delivery to one address (normalised, or exactly as given), newest first."""
    query = (
        sa.select(*_LEDGER_COLUMNS)
        .select_from(_ledger_from())
        .where(sa.or_(deliveries.c.email_normalized == email.lower(), deliveries.c.email == email))
        .order_by(deliveries.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))


#: rows fetched at a time by the streamed reads (a server-side cursor on PostgreSQL)
STREAM_CHUNK = 2000


def run_outcomes(conn: Connection, run_id: int) -> list[sa.Row[Any]]:
    """A run's deliveries in the order they were frozen, with what the per-run CSV holds: id,
    row_number, email, status, reason, attempts, message_id, sent_at, step, feedback and
    feedback_at (no variables, no secret)."""
    return list(conn.execute(_run_outcomes_query(run_id)))


def iter_run_outcomes(
    conn: Connection, run_id: int, *, chunk: int = STREAM_CHUNK
) -> Iterator[sa.Row[Any]]:
    """`run_outcomes` read `chunk` rows at a time (a server-side cursor on PostgreSQL, the
    SQLite cursor stepping through the rows): memory does not grow with the run."""
    result = conn.execute(_run_outcomes_query(run_id).execution_options(yield_per=chunk))
    with result:
        yield from result


def _run_outcomes_query(run_id: int) -> sa.Select[Any]:
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.row_number,
            deliveries.c.email,
            deliveries.c.status,
            deliveries.c.reason,
            deliveries.c.attempts,
            deliveries.c.message_id,
            deliveries.c.sent_at,
            deliveries.c.step,
            deliveries.c.feedback,
            deliveries.c.feedback_at,
        )
        .where(deliveries.c.run_id == run_id)
        .order_by(deliveries.c.id)
    )
    return query
