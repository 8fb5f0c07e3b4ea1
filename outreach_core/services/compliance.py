"""Compliance use cases: the suppression list, unsubscribing, provider feedback (bounces and
complaints), the complaint brake and the audit trail. One transaction each, audited.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.engine import Connection

from outreach_core.adapters.contact_files import parse_csv
from outreach_core.adapters.csv_files import write_csv_rows
from outreach_core.adapters.store import audit, feedback, seen_events, suppressions
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import unsubscribe_links
from outreach_core.domain.clock import utcnow
from outreach_core.domain.complaints import (
    COMPLAINT_WINDOW,
    ComplaintRate,
    brake_reason,
    over_threshold,
)
from outreach_core.domain.models import Feedback, ProviderEvent, Suppression, SuppressionReason
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import InputError, NotFound
from outreach_core.services import keys

log = logging.getLogger("outreach.compliance")

#: columns of the suppression CSV export (and accepted by the import)
EXPORT_COLUMNS = ["email", "reason", "created_at", "source"]
#: column names recognised as the reason column of an import
REASON_COLUMN = "reason"


def normalise(raw: str, *, test_environment: bool = False) -> str:
    """The key an address is suppressed under: the same one deliveries are frozen with."""
    checked = check_syntax(raw, test_environment=test_environment)
    if not checked.ok or checked.key is None:
        raise InputError(f"{raw.strip()!r} is not an email address: {checked.error}")
    return checked.key


def suppress(
    ws: Workspace,
    raw_email: str,
    *,
    reason: SuppressionReason,
    actor: str,
    source: str | None = None,
) -> bool:
    """Put an address on the list; True when it was not on it yet."""
    key = normalise(raw_email, test_environment=ws.settings.test_environment)
    now = utcnow()
    with ws.db.begin() as conn:
        added = suppressions.add_suppression(
            conn, key, reason=reason, now=now, source=source or actor
        )
        if added:
            audit.record(
                conn,
                actor=actor,
                action="suppression.add",
                subject=key,
                now=now,
                detail={"reason": str(reason)},
            )
    return added


def unsuppress(ws: Workspace, raw_email: str, *, actor: str) -> bool:
    """Take an address off the list; True when it was on it."""
    key = normalise(raw_email, test_environment=ws.settings.test_environment)
    now = utcnow()
    with ws.db.begin() as conn:
        removed = suppressions.remove_suppression(conn, key)
        if removed:
            audit.record(conn, actor=actor, action="suppression.remove", subject=key, now=now)
    return removed


def list_suppressions(ws: Workspace, *, search: str = "", limit: int = 1000) -> list[Suppression]:
    """The list, newest first, filtered by a substring of the address."""
    with ws.db.connect() as conn:
        return suppressions.list_suppressions(conn, search=search, limit=limit)


def count_suppressions(ws: Workspace) -> int:
    """How many addresses are on the list."""
    with ws.db.connect() as conn:
        return suppressions.count_suppressions(conn)


@dataclass(frozen=True)
class SuppressionImport:
    """What an import did: every data row is added, already listed, or an error."""

    added: int = 0
    already: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.already} already on the list, "
            f"{len(self.errors)} rows with errors"
        )


def _row_reason(value: str) -> SuppressionReason:
    text = value.strip().lower()
    if not text:
        return SuppressionReason.MANUAL
    try:
        return SuppressionReason(text)
    except ValueError:
        allowed = ", ".join(r.value for r in SuppressionReason)
        raise InputError(f"reason {value.strip()!r} is not one of {allowed}") from None


def import_suppressions(
    ws: Workspace, data: bytes, *, source: str, actor: str
) -> SuppressionImport:
    """Add the addresses of a CSV file (an email column; an optional `reason` column, default
    manual). A row that cannot be used is reported with its line and why; the others are added
    in one transaction."""
    parsed = parse_csv(data, source=source)
    reason_column = next((c for c in parsed.columns if c.lower() == REASON_COLUMN), None)
    errors: list[str] = []
    wanted: dict[str, SuppressionReason] = {}
    for index, row in enumerate(parsed.rows):
        line = parsed.lines[index] if index < len(parsed.lines) else index + 2
        raw = row.get(parsed.email_column, "")
        checked = check_syntax(raw, test_environment=ws.settings.test_environment)
        if not checked.ok or checked.key is None:
            errors.append(
                f"line {line}, column {parsed.email_column!r}: {raw.strip()!r} is not an email "
                f"address ({checked.error}); fix or remove the row"
            )
            continue
        try:
            reason = _row_reason(row.get(reason_column, "") if reason_column else "")
        except InputError as exc:
            errors.append(f"line {line}, column {reason_column!r}: {exc}")
            continue
        wanted.setdefault(checked.key, reason)
    now = utcnow()
    added = 0
    with ws.db.begin() as conn:
        for key, reason in wanted.items():
            added += suppressions.add_suppression(
                conn, key, reason=reason, now=now, source=f"import {source}"
            )
        audit.record(
            conn,
            actor=actor,
            action="suppression.import",
            subject=source,
            now=now,
            detail={"added": added, "rows": len(parsed.rows), "errors": len(errors)},
        )
    return SuppressionImport(added=added, already=len(wanted) - added, errors=errors)


def export_suppressions_csv(ws: Workspace) -> str:
    """The whole list as CSV text (see `write_suppressions_csv`): for small lists and tests."""
    text = io.StringIO(newline="")
    write_suppressions_csv(ws, text)
    return text.getvalue()


def write_suppressions_csv(ws: Workspace, out: TextIO) -> int:
    """The whole list as CSV (email, reason, created_at, source) written to `out` row by row
    through a cursor that fetches as it goes, formula-like cells neutralised (an address may
    begin with `=` or `-`; importing the file back restores it); returns the rows written."""
    with ws.db.connect() as conn:
        streaming = conn.execution_options(stream_results=True, max_row_buffer=2000)
        return write_csv_rows(
            out,
            EXPORT_COLUMNS,
            (
                [item.email_normalized, item.reason, item.created_at.isoformat(), item.source or ""]
                for item in suppressions.iter_suppressions(streaming)
            ),
        )


# --- unsubscribing ------------------------------------------------------------------------


#: the purpose the unsubscribe signing key is stored under (and the legacy key was derived for)
UNSUBSCRIBE_PURPOSE = keys.UNSUBSCRIBE_PURPOSE


def unsubscribe_key(ws: Workspace) -> bytes:
    """The key unsubscribe tokens are made with: the workspace's random signing key, stored
    encrypted, so that rotating the secret key does not change it."""
    return keys.signing_key(ws, UNSUBSCRIBE_PURPOSE)


def legacy_unsubscribe_key(ws: Workspace) -> bytes:
    """The key links were signed with before signing keys were stored: derived from the
    current secret key."""
    return keys.derived_unsubscribe_key(ws)


def token_is_valid(ws: Workspace, email: str, token: str) -> bool:
    """Whether the link's token was made by this workspace for this address."""
    # Mail sent before the stored key existed carries tokens under the key derived from the
    # secret key; a recipient must still be able to leave through it, so that key is accepted
    # too: derived from the current secret, or kept by the first rotation that retired it.
    accepted = [unsubscribe_key(ws), legacy_unsubscribe_key(ws)]
    kept = keys.stored_signing_key(ws, keys.LEGACY_UNSUBSCRIBE_PURPOSE)
    if kept is not None:
        accepted.append(kept)
    return any(unsubscribe_links.verify(key, email, token) for key in accepted)


def unsubscribe_address(ws: Workspace, email: str, token: str, *, via: str) -> bool:
    """Suppress the address of a valid unsubscribe link (True), or refuse a bad token (False).

    Repeating it is harmless: the address stays suppressed once.
    """
    if not token_is_valid(ws, email, token):
        return False
    suppress(ws, email, reason=SuppressionReason.UNSUBSCRIBED, actor="recipient", source=via)
    return True


# --- provider feedback --------------------------------------------------------------------


@dataclass(frozen=True)
class EventOutcome:
    """What recording one event did."""

    delivery_id: int | None
    suppressed: str | None


def record_event(ws: Workspace, event: ProviderEvent) -> EventOutcome:
    """Update the ledger (the delivery's feedback) and the suppression list for one event.

    An event whose delivery is not ours (sent by another tool) still suppresses the address:
    a hard bounce or a complaint is true of the address, whoever sent.
    """
    now = utcnow()
    with ws.db.begin() as conn:
        return _record(conn, event, now)


def record_events_once(
    ws: Workspace,
    events: list[ProviderEvent],
    *,
    provider: str,
    event_id: str,
    keep_for: timedelta,
) -> int | None:
    """Record the events of one provider request unless a request with the same id was taken
    already; how many were recorded, or None for a repeat (which changes nothing).

    The id and the events are written in one transaction, so a request that fails half-way
    leaves its id unused for the provider's retry. Ids are kept `keep_for`: longer than a
    request passes the freshness check, after which it is refused as stale anyway.
    """
    now = utcnow()
    with ws.db.begin() as conn:
        if not seen_events.first_sighting(
            conn, provider, event_id, now=now, forget_before=now - keep_for
        ):
            return None
        for event in events:
            _record(conn, event, now)
    return len(events)


def _record(conn: Connection, event: ProviderEvent, now: datetime) -> EventOutcome:
    reason = (
        SuppressionReason.COMPLAINED
        if event.feedback is Feedback.COMPLAINED
        else SuppressionReason.BOUNCED
    )
    checked = check_syntax(event.email)
    ref = feedback.find_delivery(
        conn, delivery_id=event.delivery_id, provider_message_id=event.provider_message_id
    )
    if ref is not None:
        feedback.set_feedback(conn, ref.id, event.feedback, now=now)
    key = checked.key if checked.ok else (ref.email_normalized if ref else None)
    if key:
        suppressions.add_suppression(
            conn, key, reason=reason, now=now, source=f"webhook {event.provider}"
        )
    audit.record(
        conn,
        actor=f"webhook {event.provider}",
        action=f"feedback.{event.feedback}",
        subject=key or event.email[:200],
        now=now,
        detail={"delivery_id": ref.id if ref else None, "detail": event.detail[:500]},
    )
    if ref is None:
        log.info("%s %s event for an address we have no delivery of", event.provider, reason)
    return EventOutcome(delivery_id=ref.id if ref else None, suppressed=key)


# --- the complaint brake -------------------------------------------------------------------


def complaint_brake(conn: Connection, engine_id: int | None) -> str | None:
    """Why a run sending through this engine must pause now, or None (called per batch)."""
    if engine_id is None:
        return None
    sends, complaints = feedback.complaint_window(conn, engine_id, window=COMPLAINT_WINDOW)
    if not complaints:
        return None
    name = feedback.engine_names(conn).get(engine_id, str(engine_id))
    return brake_reason(ComplaintRate(engine=name, sends=sends, complaints=complaints))


def complaint_brake_any(conn: Connection, engine_ids: list[int]) -> str | None:
    """The pause reason of the first of these engines over the brake, or None."""
    for engine_id in engine_ids:
        reason = complaint_brake(conn, engine_id)
        if reason:
            return reason
    return None


def braked_engines(ws: Workspace) -> list[ComplaintRate]:
    """Engines whose complaint rate is over the threshold (for Home)."""
    found = []
    with ws.db.connect() as conn:
        for engine_id, name in feedback.engine_names(conn).items():
            sends, complaints = feedback.complaint_window(conn, engine_id, window=COMPLAINT_WINDOW)
            rate = ComplaintRate(
                engine=name, sends=sends, complaints=complaints, engine_id=engine_id
            )
            if over_threshold(rate):
                found.append(rate)
    return found


def mark_complaints_reviewed(ws: Workspace, engine_id: int, *, actor: str) -> None:
    """Release the brake: the engine's complaints so far stop counting (new ones do)."""
    now = utcnow()
    with ws.db.begin() as conn:
        if not feedback.mark_complaints_reviewed(conn, engine_id, now=now):
            raise NotFound(f"no engine {engine_id}")
        audit.record(
            conn, actor=actor, action="engine.complaints_reviewed", subject=f"engine {engine_id}",
            now=now,
        )  # fmt: skip


# --- the audit trail -------------------------------------------------------------------------


def audit_entries(ws: Workspace, *, search: str = "", limit: int = 500) -> list[dict[str, Any]]:
    """The newest audit entries; `search` keeps those whose actor, action or subject has it."""
    with ws.db.connect() as conn:
        return audit.latest(conn, limit=limit, search=search)
