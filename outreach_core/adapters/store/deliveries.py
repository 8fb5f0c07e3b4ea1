"""Deliveries: the per-recipient ledger of a run: freezing rows, recording outcomes, counts.

Claiming rows for sending and what other workers hold in flight are in `delivery_claims`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import UTCDateTime, deliveries
from outreach_core.domain.models import Delivery, RunCounts
from outreach_core.domain.states import DeliveryStatus, check_delivery_transition
from outreach_core.errors import IllegalTransition


def status_is(status: DeliveryStatus) -> sa.ColumnElement[bool]:
    """`status = <status>` in a statement that finds its rows by id (a guard, not a filter):
    compared as `status || ''`, which no index serves, so the planner goes by the id. Left as
    a plain comparison, PostgreSQL's generic plans of these per-row statements (prepared after
    five runs, planned before the ledger's statistics know of `sending` rows) and SQLite's
    claim read the status's range of ix_deliveries_status_updated instead: every `sending` or
    `pending` row of the ledger for each message or batch."""
    return (deliveries.c.status + "") == status


#: states whose message went (or may have gone) to the engine: they carry `sent_at` and count
#: against the engine's daily quota
_HANDED_OVER = frozenset({DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.SENDING})

# Rows per INSERT statement when freezing an audience: large enough to be fast, small enough
# to stay under SQLite's bound-parameter limit.
INSERT_CHUNK = 500

#: the reason of a delivery whose executor died between handing it to its engine and recording
#: its outcome
INTERRUPTED_REASON = "interrupted mid-send; not resent to keep at-most-once"


def to_delivery(row: sa.Row) -> Delivery:
    """A row of the deliveries table as the model."""
    return Delivery.model_validate(dict(row._mapping))


def domain_of(email_normalized: str | None) -> str | None:
    """The part after the last @ of a normalised address (None when there is none)."""
    if not email_normalized or "@" not in email_normalized:
        return None
    return email_normalized.rpartition("@")[2]


#: the longest reason kept in the ledger, in characters. The reason is indexed (the Results
#: filter), and PostgreSQL refuses an index entry over about 2.7 kB: 500 characters stay under
#: it even at four bytes each, and hold any provider reply with room for retry notes.
MAX_REASON_CHARS = 500


def fit_reason(reason: str | None) -> str | None:
    """The reason as the ledger keeps it: cut to MAX_REASON_CHARS, ending in "…" when cut."""
    if reason is None or len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - 1] + "…"


def insert_deliveries(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Insert frozen delivery rows (dicts with the table's columns); returns how many.

    The recipient's `domain` is derived here from `email_normalized` when not given."""
    batch: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        if "domain" not in row:
            row = row | {"domain": domain_of(row.get("email_normalized"))}
        if row.get("reason"):
            row = row | {"reason": fit_reason(row["reason"])}
        batch.append(row)
        if len(batch) == INSERT_CHUNK:
            conn.execute(deliveries.insert(), batch)
            total += len(batch)
            batch = []
    if batch:
        conn.execute(deliveries.insert(), batch)
        total += len(batch)
    return total


#: rows frozen at once past which PostgreSQL is asked to sample the table again
STATISTICS_AFTER = 10_000


def refresh_statistics(conn: Connection, frozen: int) -> None:
    """After a large freeze on PostgreSQL, ANALYZE deliveries: until autovacuum comes round
    (never, where a server runs without it) the planner reads a freshly frozen million rows
    with the statistics of an empty table and picks plans that scan a run's rows per batch.
    SQLite's planner keeps no such statistics between statements that would mislead it."""
    if frozen >= STATISTICS_AFTER and conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE deliveries"))


def record_outcome(
    conn: Connection,
    delivery_id: int,
    *,
    target: DeliveryStatus,
    now: datetime,
    attempts: int,
    reason: str | None = None,
    message_id: str | None = None,
    provider_message_id: str | None = None,
    error_kind: str | None = None,
    reply_code: int | None = None,
    latency_ms: int | None = None,
) -> None:
    """Record the outcome of a claimed delivery; it must still be `sending`.

    `attempts` are this round's: they are added to the row's earlier ones (a manual retry).
    """
    check_delivery_transition(DeliveryStatus.SENDING, target)
    values: dict[str, Any] = {
        "status": target,
        "reason": sa.func.coalesce(sa.literal(fit_reason(reason), sa.Text), deliveries.c.reason),
        "attempts": deliveries.c.attempts + attempts,
        "updated_at": now,
        # an outcome without one keeps the Message-ID stored when the message was handed over
        "message_id": sa.func.coalesce(sa.literal(message_id, sa.String), deliveries.c.message_id),
        "provider_message_id": provider_message_id,
        "error_kind": error_kind,
        "reply_code": reply_code,
        "latency_ms": latency_ms,
    }
    if target in _HANDED_OVER:
        values["sent_at"] = now
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, status_is(DeliveryStatus.SENDING))
        .values(**values)
    )
    if result.rowcount != 1:
        raise IllegalTransition(f"delivery {delivery_id} is no longer sending; not recorded")


#: one prepared statement for a batch of outcomes (executemany); only `sending` rows change
_RECORD_MANY = (
    deliveries.update()
    .where(
        deliveries.c.id == sa.bindparam("b_id"),
        status_is(DeliveryStatus.SENDING),
    )
    .values(
        status=sa.bindparam("b_status"),
        # a row put back to pending by a manual retry keeps its note when sent, and its
        # earlier attempts: attempts add up over every round
        reason=sa.func.coalesce(sa.bindparam("b_reason", type_=sa.Text), deliveries.c.reason),
        attempts=deliveries.c.attempts + sa.bindparam("b_attempts", type_=sa.Integer),
        updated_at=sa.bindparam("b_now"),
        sent_at=sa.bindparam("b_sent_at"),
        # an outcome without one (unknown, deferred) keeps the Message-ID stored when the
        # message was handed over: a resend carries it again
        message_id=sa.func.coalesce(
            sa.bindparam("b_message_id", type_=sa.String), deliveries.c.message_id
        ),
        provider_message_id=sa.bindparam("b_provider_message_id"),
        error_kind=sa.bindparam("b_error_kind"),
        reply_code=sa.bindparam("b_reply_code"),
        latency_ms=sa.bindparam("b_latency_ms"),
        # a deferral keeps the row's first one: the retry lifetime counts from it
        deferred_since=sa.func.coalesce(
            deliveries.c.deferred_since, sa.bindparam("b_deferred_since", type_=UTCDateTime())
        ),
        next_attempt_at=sa.bindparam("b_next_attempt_at", type_=UTCDateTime()),
    )
)


def record_outcomes(conn: Connection, outcomes: list[dict[str, Any]], *, now: datetime) -> int:
    """Record many outcomes in one statement; each dict has the keys of `record_outcome`
    (`delivery_id`, `target`, `attempts`, and optionally `reason`, `message_id`,
    `provider_message_id`, `error_kind`, `reply_code`, `latency_ms`, `ended_at`,
    `deferred_since`, `next_attempt_at`). Returns how many rows changed.

    `ended_at`, when given, is the time that delivery's attempt ended: it becomes its
    `updated_at`, and its `sent_at` when handed over, so a batch recorded in one statement
    keeps each message's own time; without it the row gets `now`."""
    if not outcomes:
        return 0
    return conn.execute(_RECORD_MANY, outcome_params(outcomes, now=now)).rowcount


def outcome_params(outcomes: list[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """The bound values of `record_outcomes`, one dict per outcome (its transition checked)."""
    params = []
    for item in outcomes:
        target = DeliveryStatus(item["target"])
        check_delivery_transition(DeliveryStatus.SENDING, target)
        at = item.get("ended_at") or now
        params.append(
            {
                "b_id": item["delivery_id"],
                "b_status": target,
                "b_reason": fit_reason(item.get("reason")),
                "b_attempts": item["attempts"],
                "b_now": at,
                "b_sent_at": at if target in _HANDED_OVER else None,
                "b_message_id": item.get("message_id"),
                "b_provider_message_id": item.get("provider_message_id"),
                "b_error_kind": item.get("error_kind"),
                "b_reply_code": item.get("reply_code"),
                "b_latency_ms": item.get("latency_ms"),
                "b_deferred_since": item.get("deferred_since"),
                "b_next_attempt_at": item.get("next_attempt_at"),
            }
        )
    return params


def skip_pending(conn: Connection, run_id: int, *, reason: str, now: datetime) -> int:
    """Every still-pending delivery of the run becomes `skipped` with the reason."""
    check_delivery_transition(DeliveryStatus.PENDING, DeliveryStatus.SKIPPED)
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, reason=fit_reason(reason), updated_at=now)
    )
    return result.rowcount


def cancel_pending(conn: Connection, run_id: int, *, reason: str, now: datetime) -> int:
    """Every still-pending delivery of the run becomes `cancelled` with the reason (who, when)."""
    check_delivery_transition(DeliveryStatus.PENDING, DeliveryStatus.CANCELLED)
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, reason=fit_reason(reason), updated_at=now)
    )
    return result.rowcount


def engine_usage(conn: Connection, engine_ids: list[int], *, since: datetime) -> dict[int, int]:
    """Messages each engine took since `since`, over every run: sent, plus sending and unknown
    (they may have gone out). Engines without any get 0."""
    used = dict.fromkeys(engine_ids, 0)
    if not engine_ids:
        return used
    rows = conn.execute(
        sa.select(deliveries.c.engine_id, sa.func.count())
        .where(
            deliveries.c.engine_id.in_(engine_ids),
            deliveries.c.sent_at >= since,
            deliveries.c.status.in_(list(_HANDED_OVER)),
        )
        .group_by(deliveries.c.engine_id)
    )
    for engine_id, n in rows:
        used[int(engine_id)] = int(n)
    return used


def has_pending(conn: Connection, run_id: int) -> bool:
    """Whether the run still has deliveries waiting to be sent."""
    query = (
        sa.select(deliveries.c.id)
        .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def counts(conn: Connection, run_id: int) -> RunCounts:
    """Deliveries of a run by status."""
    rows = conn.execute(
        sa.select(deliveries.c.status, sa.func.count())
        .where(deliveries.c.run_id == run_id)
        .group_by(deliveries.c.status)
    )
    by_status = {str(status): int(n) for status, n in rows}
    return RunCounts(total=sum(by_status.values()), **by_status)


def counts_for_runs(conn: Connection, run_ids: list[int]) -> dict[int, RunCounts]:
    """Delivery counts of several runs in one query (runs without deliveries get zeros)."""
    by_run: dict[int, dict[str, int]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        rows = conn.execute(
            sa.select(deliveries.c.run_id, deliveries.c.status, sa.func.count())
            .where(deliveries.c.run_id.in_(run_ids))
            .group_by(deliveries.c.run_id, deliveries.c.status)
        )
        for run_id, status, n in rows:
            by_run[int(run_id)][str(status)] = int(n)
    return {
        run_id: RunCounts(total=sum(found.values()), **found) for run_id, found in by_run.items()
    }


def list_deliveries(
    conn: Connection, run_id: int, *, limit: int | None = None, offset: int = 0
) -> list[Delivery]:
    """A run's deliveries in the order they were frozen."""
    query = (
        sa.select(deliveries)
        .where(deliveries.c.run_id == run_id)
        .order_by(deliveries.c.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [to_delivery(row) for row in conn.execute(query)]


def has_deliveries(conn: Connection, run_id: int) -> bool:
    """Whether the run's audience was frozen already."""
    query = sa.select(deliveries.c.id).where(deliveries.c.run_id == run_id).limit(1)
    return conn.execute(query).first() is not None


def requeue(
    conn: Connection,
    run_id: int,
    *,
    statuses: list[DeliveryStatus],
    note: str,
    now: datetime,
) -> int:
    """Deliveries of the run in `statuses` (deferred, unknown) go back to `pending`.

    Their attempts are kept (the executor adds to them) and `note` is put before their reason,
    so the ledger says the row was retried on request and what had happened to it before.
    """
    for status in statuses:
        check_delivery_transition(status, DeliveryStatus.PENDING)
    result = conn.execute(
        deliveries.update()
        .where(deliveries.c.run_id == run_id, deliveries.c.status.in_(statuses))
        .values(
            status=DeliveryStatus.PENDING,
            claimed_by=None,
            # a person's retry starts afresh: quick tries first, a new retry lifetime
            deferred_since=None,
            next_attempt_at=None,
            # each retry puts its note first: cut the end, so the newest notes stay
            reason=sa.func.substr(
                sa.literal(note) + sa.func.coalesce(deliveries.c.reason, ""), 1, MAX_REASON_CHARS
            ),
            updated_at=now,
        )
    )
    return result.rowcount


def sent_by_worker(conn: Connection, run_id: int) -> dict[str | None, int]:
    """Sent deliveries of the run by the worker that claimed them (how daemons shared it)."""
    rows = conn.execute(
        sa.select(deliveries.c.claimed_by, sa.func.count())
        .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.SENT)
        .group_by(deliveries.c.claimed_by)
    )
    return {worker: int(n) for worker, n in rows}
