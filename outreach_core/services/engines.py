"""Engines: saving one (its URL encrypted, a masked copy shown), its limits and From address,
listing them with today's usage, and testing a connection without ever showing its secret."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from outreach_core.adapters import crypto, url_secrets
from outreach_core.adapters.senders import open_sender, parse_engine_url
from outreach_core.adapters.store import audit, deliveries, engines
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.engine_rotation import utc_day_start
from outreach_core.domain.forms import parse_engine_limits
from outreach_core.domain.models import Engine, EngineLimits
from outreach_core.domain.validation import check_syntax
from outreach_core.errors import FieldErrors, InputError, OutreachError, SendError


def save_engine(
    ws: Workspace, *, name: str, url: str, from_email: str, from_name: str, actor: str
) -> Engine:
    """Create or update an engine; its URL is stored encrypted, a masked copy for display."""
    parsed = parse_engine_url(url)
    checked = check_syntax(from_email, test_environment=ws.settings.test_environment)
    if not checked.ok:
        raise InputError(f"from address {from_email!r}: {checked.error}")
    now = utcnow()
    with ws.db.begin() as conn:
        # re-saving an engine (a new URL or secret) keeps the limits set on it
        kept = next((e.limits for e in engines.list_engines(conn) if e.name == name), None)
        engine_id = engines.upsert_engine(
            conn,
            limits=kept,
            name=name,
            kind=parsed.kind,
            url_encrypted=ws.encrypt(conn, url),
            display_url=parsed.display,
            from_email=checked.address or from_email,
            from_name=from_name,
            now=now,
        )
        audit.record(
            conn,
            actor=actor,
            action="engine.save",
            subject=f"engine {engine_id}",
            now=now,
            detail={"name": name, "url": parsed.display},
        )
        return engines.get_engine(conn, engine_id)


#: how the versions of an engine are named: `NAME (v2)`, `NAME (v3)`…
VERSION_PREFIX = " (v"
#: engine names are at most 200 characters; room is kept for the version suffix
_NAME_ROOM = 180


def save_engine_version(
    ws: Workspace, *, name: str, url: str, from_email: str, from_name: str, actor: str
) -> Engine:
    """The engine named `name` (or one of its versions `name (vN)`) whose stored URL and
    From are exactly these, else a new version of it. Unlike `save_engine`, never changes an
    engine that exists: runs that use it resume with the secret and From they were queued
    with. What a command-line send uses."""
    parsed = parse_engine_url(url)
    checked = check_syntax(from_email, test_environment=ws.settings.test_environment)
    if not checked.ok:
        raise InputError(f"from address {from_email!r}: {checked.error}")
    address = checked.address or from_email
    base = name[:_NAME_ROOM]
    for _ in range(5):  # another process may take the same new name first: read again
        now = utcnow()
        try:
            with ws.db.begin() as conn:
                versions = engines.engines_named(conn, base, prefix=VERSION_PREFIX)
                for engine, encrypted in versions:
                    same_sender = (engine.from_email, engine.from_name) == (address, from_name)
                    if same_sender and crypto.decrypt(ws.fernet, encrypted) == url:
                        return engine
                taken = {engine.name for engine, _ in versions}
                version = 1 if base not in taken else len(versions) + 1
                while _versioned(base, version) in taken:
                    version += 1
                engine_id = engines.insert_engine(
                    conn,
                    name=_versioned(base, version),
                    kind=parsed.kind,
                    url_encrypted=ws.encrypt(conn, url),
                    display_url=parsed.display,
                    from_email=address,
                    from_name=from_name,
                    now=now,
                    # the newest version's limits: the same account most likely
                    limits=versions[-1][0].limits if versions else None,
                )
                audit.record(
                    conn,
                    actor=actor,
                    action="engine.save",
                    subject=f"engine {engine_id}",
                    now=now,
                    detail={"name": _versioned(base, version), "url": parsed.display},
                )
                return engines.get_engine(conn, engine_id)
        except sa.exc.IntegrityError:
            continue
    raise InputError(f"engine {base!r}: could not save a new version (name taken); try again")


def _versioned(base: str, version: int) -> str:
    return base if version == 1 else f"{base}{VERSION_PREFIX}{version})"


def save_engine_limits(
    ws: Workspace,
    engine_id: int,
    limits: EngineLimits,
    *,
    actor: str,
    from_email: str | None = None,
    from_name: str | None = None,
) -> Engine:
    """Change an engine's limits (and, when given, its From address and name) without its URL:
    the stored secret is neither needed nor touched."""
    now = utcnow()
    with ws.db.begin() as conn:
        engine = engines.get_engine(conn, engine_id)
        detail: dict[str, Any] = {"limits": limits.model_dump(mode="json", exclude_none=True)}
        engines.set_limits(conn, engine_id, limits)
        if from_email is not None or from_name is not None:
            address = engine.from_email
            if from_email is not None and from_email.strip() != engine.from_email:
                checked = check_syntax(from_email, test_environment=ws.settings.test_environment)
                if not checked.ok:
                    raise InputError(f"from address {from_email!r}: {checked.error}")
                address = checked.address or from_email
            name = engine.from_name if from_name is None else from_name.strip()
            engines.set_sender(conn, engine_id, from_email=address, from_name=name)
            detail["from"] = f"{name} <{address}>" if name else address
        audit.record(
            conn,
            actor=actor,
            action="engine.limits",
            subject=f"engine {engine_id}",
            now=now,
            detail=detail,
        )
        return engines.get_engine(conn, engine_id)


def save_engine_limits_form(
    ws: Workspace, engine_id: int, values: dict[str, Any], *, actor: str
) -> Engine:
    """The Engines page's limits form: blank = no limit; FieldErrors by field, nothing saved."""
    limits = parse_engine_limits(values)
    try:
        return save_engine_limits(
            ws,
            engine_id,
            limits,
            actor=actor,
            from_email=values.get("from_email"),
            from_name=values.get("from_name"),
        )
    except InputError as exc:
        if str(exc).startswith("from address"):
            raise FieldErrors({"from_email": str(exc)}) from None
        raise


def engine_usage_today(ws: Workspace) -> dict[int, int]:
    """Messages each engine took since midnight UTC over every run (sent, unknown, in flight):
    what its daily quota is counted against."""
    with ws.db.connect() as conn:
        ids = [engine.id for engine in engines.list_engines(conn)]
        return deliveries.engine_usage(conn, ids, since=utc_day_start(utcnow()))


def list_engines(ws: Workspace) -> list[Engine]:
    """All engines, secrets masked."""
    with ws.db.connect() as conn:
        return engines.list_engines(conn)


def test_engine_connection(ws: Workspace, engine_id: int) -> str:
    """Open the engine's sender and run its `check()`: a sentence on success.

    Raises SendError (or InputError) saying what is wrong. Neither the sentence nor the
    error ever contains the engine's password or key.
    """
    with ws.db.connect() as conn:
        engine = engines.get_engine(conn, engine_id)
        encrypted = engines.get_encrypted_url(conn, engine.id)
    url = crypto.decrypt(ws.fernet, encrypted)

    async def check() -> str:
        async with open_sender(url, concurrency=1) as sender:
            return await sender.check()

    def scrub(text: str) -> str:
        return url_secrets.scrub(text, url)

    try:
        message = asyncio.run(check())
    except SendError as exc:
        raise SendError(scrub(str(exc)), kind=exc.kind) from None
    except OutreachError as exc:
        raise InputError(scrub(str(exc))) from None
    except OSError as exc:  # anything the sender did not translate
        raise InputError(scrub(f"engine {engine.name}: {type(exc).__name__}: {exc}")) from None
    return scrub(message)
