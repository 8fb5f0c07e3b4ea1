"""Engine mailboxes: the URL (encrypted, with a masked copy for display) and the state of the
last pass (`mailbox_states`): the folder's UIDVALIDITY, the high-water mark, how it went, and a
lease so that of several daemons only one reads a mailbox at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outreach_core.adapters.store.tables import engines, mailbox_states
from outreach_core.adapters.url_secrets import mask_url
from outreach_core.errors import NotFound


@dataclass(frozen=True)
class EngineMailbox:
    """An engine with a mailbox; `url_encrypted` only the reader decrypts."""

    engine_id: int
    engine_name: str
    display_url: str
    url_encrypted: str


@dataclass(frozen=True)
class MailboxState:
    """Where the last pass over an engine's mailbox stopped and how it went."""

    engine_id: int
    folder: str
    uidvalidity: int | None
    last_uid: int
    message_count: int | None
    checked_at: datetime | None
    ok_at: datetime | None
    error: str | None


def set_mailbox_url(
    conn: Connection, engine_id: int, *, url_encrypted: str | None, display_url: str | None
) -> None:
    """Store (or, with None, clear) the engine's mailbox URL. Either forgets the state of its
    passes: another server may have the same folder and UIDVALIDITY, so a mailbox named (again)
    is read from its start; what was handled before carries the handled keyword and is passed
    over, and an event is recorded once per message, delivery and kind anyway."""
    result = conn.execute(
        engines.update()
        .where(engines.c.id == engine_id)
        .values(mailbox_url_encrypted=url_encrypted, mailbox_display_url=display_url)
    )
    if result.rowcount == 0:
        raise NotFound(f"there is no engine {engine_id}")
    conn.execute(mailbox_states.delete().where(mailbox_states.c.engine_id == engine_id))


def engine_mailboxes(conn: Connection, engine_id: int | None = None) -> list[EngineMailbox]:
    """Engines with a mailbox (or just `engine_id`'s), by name."""
    query = sa.select(
        engines.c.id, engines.c.name, engines.c.mailbox_display_url, engines.c.mailbox_url_encrypted
    ).where(engines.c.mailbox_url_encrypted.is_not(None))
    if engine_id is not None:
        query = query.where(engines.c.id == engine_id)
    rows = conn.execute(query.order_by(engines.c.name))
    return [
        EngineMailbox(int(r.id), str(r.name), mask_url(r.mailbox_display_url or ""), str(r[3]))
        for r in rows
    ]


def _to_state(row: sa.Row) -> MailboxState:
    return MailboxState(
        engine_id=int(row.engine_id),
        folder=str(row.folder),
        uidvalidity=None if row.uidvalidity is None else int(row.uidvalidity),
        last_uid=int(row.last_uid or 0),
        message_count=None if row.message_count is None else int(row.message_count),
        checked_at=row.checked_at,
        ok_at=row.ok_at,
        error=row.error,
    )


def get_state(conn: Connection, engine_id: int) -> MailboxState | None:
    """The engine's mailbox state, None before its first pass."""
    row = conn.execute(
        sa.select(mailbox_states).where(mailbox_states.c.engine_id == engine_id)
    ).first()
    return None if row is None else _to_state(row)


def list_states(conn: Connection) -> dict[int, MailboxState]:
    """Every mailbox state by engine id."""
    return {int(row.engine_id): _to_state(row) for row in conn.execute(sa.select(mailbox_states))}


def claim(
    conn: Connection, engine_id: int, *, folder: str, holder: str, now: datetime, lease: timedelta
) -> MailboxState | None:
    """Take the engine's mailbox for a pass until `now + lease`: the state to start from, or
    None when another holder's lease runs still. Commit before reading the mailbox."""
    if get_state(conn, engine_id) is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    mailbox_states.insert().values(engine_id=engine_id, folder=folder, last_uid=0)
                )
        except sa.exc.IntegrityError:  # another daemon inserted it first
            pass
    result = conn.execute(
        mailbox_states.update()
        .where(
            mailbox_states.c.engine_id == engine_id,
            sa.or_(
                mailbox_states.c.claimed_until.is_(None),
                mailbox_states.c.claimed_until < now,
                mailbox_states.c.claimed_by == holder,
            ),
        )
        .values(claimed_by=holder, claimed_until=now + lease)
    )
    if result.rowcount != 1:
        return None
    return get_state(conn, engine_id)


def advance(
    conn: Connection, engine_id: int, *, folder: str, uidvalidity: int, last_uid: int
) -> None:
    """Move the high-water mark (in the transaction that recorded what the message said)."""
    conn.execute(
        mailbox_states.update()
        .where(mailbox_states.c.engine_id == engine_id)
        .values(folder=folder, uidvalidity=uidvalidity, last_uid=last_uid)
    )


def finish(
    conn: Connection,
    engine_id: int,
    *,
    holder: str,
    now: datetime,
    error: str | None,
    message_count: int | None = None,
) -> None:
    """Record how the pass went (error None: it worked) and give the lease back."""
    values: dict[str, object] = {"checked_at": now, "error": error}
    if error is None:
        values["ok_at"] = now
    if message_count is not None:
        values["message_count"] = message_count
    conn.execute(
        mailbox_states.update()
        .where(mailbox_states.c.engine_id == engine_id)
        .values(**values)
        .values(
            claimed_by=sa.case(
                (mailbox_states.c.claimed_by == holder, None), else_=mailbox_states.c.claimed_by
            ),
            claimed_until=sa.case(
                (mailbox_states.c.claimed_by == holder, None), else_=mailbox_states.c.claimed_until
            ),
        )
    )
