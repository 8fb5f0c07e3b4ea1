"""mask stored URLs: engine and SQL source display forms, engine names and the audit details of
their saves, written before every URL was masked from `://` to the last `@` and of its
password-like parameters, may hold a password in clear; they are masked again

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The masking rules as this migration applies them, written out here so that later changes to
# the application's masking never change what this migration did.
_MASK = "***"
_SECRET_PARAMETERS = {
    "password", "pass", "passwd", "pwd", "secret", "token", "key", "api_key", "apikey",
    "access_key", "secret_key", "access_token", "auth", "auth_token", "client_secret",
    "sslpassword", "sslkey_password", "signature", "sig",
}  # fmt: skip
_SECRET_SUFFIXES = ("password", "secret", "_token", "_key", "apikey", "_pwd")
_KEY_ONLY_SCHEMES = {"sendgrid", "mailgun"}
#: a URL inside a longer text (an engine named `cli smtp://…`)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def _secret_name(name: str) -> bool:
    key = unquote(name).strip().lower().replace("-", "_")
    return key in _SECRET_PARAMETERS or key.endswith(_SECRET_SUFFIXES)


def _mask_rest(rest: str) -> str:
    rest, hash_sign, _ = rest.partition("#")
    where, question, query = rest.partition("?")
    if question:
        pairs = []
        for pair in query.split("&"):
            name, equals, value = pair.partition("=")
            pairs.append(f"{name}{equals}{_MASK if equals and _secret_name(name) else value}")
        query = "&".join(pairs)
    return where + question + query + (f"#{_MASK}" if hash_sign else "")


def mask(url: str) -> str:
    """Userinfo from `://` to the last `@` (the user name kept where it is plainly one), the
    values of password-like parameters and any fragment as `***`."""
    scheme, sep, tail = url.partition("://")
    if not sep or tail.startswith("/") or "@" not in tail:
        return f"{scheme}{sep}{_mask_rest(tail)}" if sep else url
    userinfo, _, rest = tail.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if scheme.lower() in _KEY_ONLY_SCHEMES or any(c in user for c in "/?#@"):
        shown = _MASK
    else:
        shown = f"{user}:{_MASK}" if colon else user
    return f"{scheme}://{shown}@{_mask_rest(rest)}"


def mask_in_text(text: str) -> str:
    return _URL.sub(lambda m: mask(m.group(0)), text)


def _remask_column(bind: sa.engine.Connection, table: sa.Table, column: str) -> None:
    for row in bind.execute(sa.select(table.c.id, table.c[column])).all():
        value = row[1]
        masked = mask_in_text(value) if value else value
        if masked != value:
            bind.execute(table.update().where(table.c.id == row[0]).values({column: masked}))


def upgrade() -> None:
    bind = op.get_bind()
    engines = sa.table("engines", sa.column("id"), sa.column("name"), sa.column("display_url"))
    sources = sa.table("sql_sources", sa.column("id"), sa.column("display_url"))
    _remask_column(bind, engines, "display_url")
    _remask_column(bind, sources, "display_url")
    # engine names made by the CLI hold the URL as it was shown; names stay unique
    taken = {name for (name,) in bind.execute(sa.select(engines.c.name))}
    for engine_id, name in bind.execute(sa.select(engines.c.id, engines.c.name)).all():
        masked = mask_in_text(name)
        if masked == name:
            continue
        if masked in taken:
            masked = f"{masked} #{engine_id}"
        taken.discard(name)
        taken.add(masked)
        bind.execute(engines.update().where(engines.c.id == engine_id).values(name=masked))
    audit = sa.table(
        "audit_log", sa.column("id"), sa.column("action"), sa.column("detail", sa.JSON)
    )
    saves = sa.select(audit.c.id, audit.c.detail).where(
        audit.c.action.in_(["engine.save", "sql_source.save"])
    )
    for entry_id, detail in bind.execute(saves).all():
        if not isinstance(detail, dict):
            continue
        changed: dict[str, Any] = {
            key: mask_in_text(value) if isinstance(value, str) else value
            for key, value in detail.items()
        }
        if changed != detail:
            bind.execute(audit.update().where(audit.c.id == entry_id).values(detail=changed))


def downgrade() -> None:
    """Nothing to undo: a masked form is what every later version shows."""
