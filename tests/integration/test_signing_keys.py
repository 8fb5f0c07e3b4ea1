"""The unsubscribe signing key, on SQLite and PostgreSQL: random, made once per workspace (also
when two processes make it at once), stored only encrypted, and unchanged by rotate-key, so
links in mail sent before a rotation still unsubscribe through the HTTP face afterwards. Tokens
under the legacy key (derived from the secret key) still verify."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.senders.outbox import message_files
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions
from outreach_core.domain.states import RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.domain.unsubscribe_links import token as make_token
from outreach_core.entrypoints.http_api import create_app
from outreach_core.services import compliance, keys
from outreach_core.services.sending import StopSignal, new_worker_id, run_to_end
from tests.asgi_server import serve_asgi

from conftest import make_settings

PUBLIC_BASE = "https://mail.example.com/unsubscribe"
RECIPIENTS = ["Ann@Example.com", "bob@example.com", "cy@example.com"]
ONE_CLICK = b"List-Unsubscribe=One-Click"


def send_with_links(ws: Workspace, outbox: Path) -> dict[str, str]:
    """Send one message to each recipient through an outbox engine; each recipient's
    List-Unsubscribe link (path and query), keyed by the lower-cased address."""
    workflow = services.setup_workflow(
        ws,
        name="news",
        parsed=ParsedFile("c.csv", ["email"], "email", [{"email": email} for email in RECIPIENTS]),
        template=TemplateSource("Hi", None, "Leave: {{ unsubscribe_url }}"),
        engine_url=f"outbox://{outbox}",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, unsubscribe_base_url=PUBLIC_BASE, dedupe_window_hours=0),
        actor="test",
    )
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor="test")
    assert run_to_end(ws, run_id, worker_id=new_worker_id(), stop=StopSignal()).status is (
        RunStatus.COMPLETED
    )
    links = {}
    for path in message_files(outbox):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        url = str(message["List-Unsubscribe"]).strip().strip("<>")
        assert url.startswith(PUBLIC_BASE + "?")
        parts = urlsplit(url)
        links[str(message["To"]).lower()] = f"{parts.path}?{parts.query}"
    assert sorted(links) == sorted(email.lower() for email in RECIPIENTS)
    return links


def link_email_and_token(link: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(link).query)
    return query["email"][0], query["token"][0]


def suppressed(ws: Workspace) -> dict[str, str]:
    return {s.email_normalized: s.reason for s in compliance.list_suppressions(ws)}


def signing_rows(ws: Workspace) -> list[dict[str, object]]:
    with ws.db.connect() as conn:
        return [dict(row) for row in conn.execute(tables.signing_keys.select()).mappings()]


def dump(ws: Workspace) -> str:
    """Every value of every table, as text."""
    with ws.db.connect() as conn:
        return "\n".join(
            repr(row)
            for table in tables.metadata.sorted_tables
            for row in conn.execute(table.select())
        )


def spellings(raw: bytes) -> list[str]:
    """The ways a raw key could show up in a table dump."""
    return [
        repr(raw),
        raw.hex(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


@contextmanager
def serve(ws: Workspace) -> Iterator[httpx.Client]:
    """A client for the HTTP face over `ws` (the API itself off: no token), on loopback."""
    with (
        serve_asgi(create_app(ws, api_token=None)) as base,
        httpx.Client(base_url=base, follow_redirects=False) as client,
    ):
        yield client


@pytest.fixture
def http(workspace: Workspace) -> Iterator[httpx.Client]:
    with serve(workspace) as client:
        yield client


def rotated_settings(db_url: str, tmp_path: Path, mode: str) -> tuple[Settings, str | None]:
    """The settings a workspace starts with, and the new key rotate_key is given (env mode)."""
    settings = make_settings(tmp_path, db_url)
    if mode == "env":
        settings = settings.model_copy(update={"secret_key": Fernet.generate_key().decode()})
        return settings, Fernet.generate_key().decode()
    return settings, None


@pytest.mark.parametrize("mode", ["key_file", "env"])
def test_links_mailed_before_a_rotation_still_unsubscribe_through_http(
    db_url: str, tmp_path: Path, mode: str
) -> None:
    """Verify a link mailed before rotate_key (key file, or OUTREACH_SECRET_KEY swapped for
    OUTREACH_NEW_SECRET_KEY) still verifies in the restarted workspace, a one-click POST to it
    suppresses exactly that address, and a tampered token is refused."""
    settings, new_key = rotated_settings(db_url, tmp_path, mode)
    ws = open_workspace(settings)
    try:
        links = send_with_links(ws, tmp_path / "outbox")
        legacy_before = compliance.legacy_unsubscribe_key(ws)
        keys.rotate_key(ws, new_key=new_key, actor="test")
    finally:
        ws.close()
    # the process restarts with the new key in place (env mode: the variables swapped)
    after = settings.model_copy(update={"secret_key": new_key}) if new_key else settings
    ws = open_workspace(after)
    try:
        # the legacy key moved with the secret: only the stored key can still verify the links
        assert compliance.legacy_unsubscribe_key(ws) != legacy_before
        for link in links.values():
            assert compliance.token_is_valid(ws, *link_email_and_token(link))
        ann = links["ann@example.com"]
        _, token = link_email_and_token(ann)
        changed = ("B" if token[0] == "A" else "A") + token[1:]
        tampered = ann.replace(f"token={token}", f"token={changed}")
        with serve(ws) as client:
            assert client.post(tampered, content=ONE_CLICK).status_code == 403
            assert (
                client.post(
                    links["bob@example.com"].replace("bob%40", "ann%40"), content=ONE_CLICK
                ).status_code
                == 403
            )
            assert suppressed(ws) == {}
            done = client.post(
                ann,
                content=ONE_CLICK,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200 and not done.is_redirect
        assert suppressed(ws) == {"ann@example.com": "unsubscribed"}
    finally:
        ws.close()


def test_the_key_is_made_once_and_stored_only_encrypted(workspace: Workspace) -> None:
    """Verify two calls (and a second workspace on the same database) give the same 32-byte
    key, one row holds it, encrypted with the workspace's key, and no spelling of the raw key
    is anywhere in the database."""
    assert signing_rows(workspace) == []
    first = compliance.unsubscribe_key(workspace)
    assert len(first) == keys.SIGNING_KEY_BYTES
    assert compliance.unsubscribe_key(workspace) == first
    other = open_workspace(workspace.settings)
    try:
        assert compliance.unsubscribe_key(other) == first
    finally:
        other.close()

    rows = signing_rows(workspace)
    assert [row["purpose"] for row in rows] == [compliance.UNSUBSCRIBE_PURPOSE]
    stored = str(rows[0]["key_encrypted"])
    assert base64.urlsafe_b64decode(workspace.fernet.decrypt(stored.encode())) == first
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(stored.encode())
    everything = dump(workspace)
    assert stored in everything  # the dump does show the column
    for spelling in spellings(first):
        assert spelling not in everything
    # not the legacy key either: a random key, not one derived from the secret
    assert first != compliance.legacy_unsubscribe_key(workspace)


def create_at_once(creators: tuple[Workspace, ...], purpose: str) -> list[bytes]:
    """Each workspace calls ensure_signing_key(purpose) in its own thread, released together;
    the keys they got, in order (an exception in a thread fails the test here)."""
    got: dict[int, bytes] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(creators), timeout=60)

    def create(index: int, ws: Workspace) -> None:
        try:
            start.wait()
            got[index] = keys.ensure_signing_key(ws, purpose)
        except BaseException as exc:  # handed to the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=pair) for pair in enumerate(creators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return [got[index] for index in range(len(creators))]


def test_two_concurrent_creators_end_with_one_key(workspace: Workspace) -> None:
    """Verify two workspaces (own connection pools, one thread each) creating the same key at
    the same moment both get the one key stored, and only one row exists per purpose."""
    second = open_workspace(workspace.settings)
    try:
        for round_number in range(5):
            purpose = f"race-{round_number}"
            first_key, second_key = create_at_once((workspace, second), purpose)
            assert first_key == second_key and len(first_key) == keys.SIGNING_KEY_BYTES
            assert keys.signing_key(workspace, purpose) == first_key
        with workspace.db.connect() as conn:
            purposes = conn.execute(sa.select(tables.signing_keys.c.purpose)).scalars().all()
        assert sorted(purposes) == [f"race-{n}" for n in range(5)]
        # a creator that finds a key already stored gets that key, not its own
        assert keys.ensure_signing_key(second, "race-0") == keys.signing_key(workspace, "race-0")
    finally:
        second.close()


def test_a_token_under_the_legacy_derived_key_still_verifies(
    workspace: Workspace, http: httpx.Client
) -> None:
    """Verify a token made with the key derived from the secret (links mailed before the key
    was stored) verifies and unsubscribes over HTTP, only for its own address; after the
    secret key is rotated away the first rotation's copy of that key still verifies it, and
    stored-key tokens verify as before."""
    legacy = compliance.legacy_unsubscribe_key(workspace)
    assert legacy == crypto.derived_key(
        crypto.load_secret(None, workspace.settings.data_dir), "unsubscribe"
    )
    old_token = make_token(legacy, "dee@example.com")
    assert old_token != make_token(compliance.unsubscribe_key(workspace), "dee@example.com")
    assert compliance.token_is_valid(workspace, "Dee@Example.com", old_token)
    assert not compliance.token_is_valid(workspace, "eve@example.com", old_token)
    assert not compliance.token_is_valid(workspace, "dee@example.com", old_token[:-2] + "xx")

    refused = http.post(
        "/unsubscribe", params={"email": "eve@example.com", "token": old_token}, content=ONE_CLICK
    )
    assert refused.status_code == 403
    done = http.post(
        f"/unsubscribe/{old_token}", params={"email": "dee@example.com"}, content=ONE_CLICK
    )
    assert done.status_code == 200
    assert suppressed(workspace) == {"dee@example.com": "unsubscribed"}

    stored_token = make_token(compliance.unsubscribe_key(workspace), "fay@example.com")
    gus_token = make_token(legacy, "gus@example.com")
    for _ in range(2):  # the first rotation keeps the retired secret's derived key; the next too
        keys.rotate_key(workspace, actor="test")
        assert compliance.legacy_unsubscribe_key(workspace) != legacy
        assert compliance.token_is_valid(workspace, "fay@example.com", stored_token)
        assert compliance.token_is_valid(workspace, "gus@example.com", gus_token)
        assert not compliance.token_is_valid(workspace, "eve@example.com", gus_token)
    # a token derived from a secret that never signed a link (one after the first) is refused
    later = compliance.legacy_unsubscribe_key(workspace)
    keys.rotate_key(workspace, actor="test")
    assert not compliance.token_is_valid(
        workspace, "hal@example.com", make_token(later, "hal@example.com")
    )


def test_add_if_absent_says_whether_its_key_went_in(workspace: Workspace) -> None:
    """Verify the store's add_if_absent is True for the first key of a purpose and False for a
    second one (which leaves the first stored), on both databases."""
    from datetime import UTC, datetime

    from outreach_core.adapters.store import signing_keys

    now = datetime(2030, 1, 1, tzinfo=UTC)
    with workspace.db.begin() as conn:
        assert signing_keys.add_if_absent(conn, "probe", "first", now=now) is True
        assert signing_keys.add_if_absent(conn, "probe", "second", now=now) is False
        assert signing_keys.get_encrypted(conn, "probe") == "first"
