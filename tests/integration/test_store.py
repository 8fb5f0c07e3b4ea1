"""The store on SQLite and PostgreSQL: schema, repositories, guarded status changes, claiming."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from outreach_core import services
from outreach_core.adapters import crypto
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import (
    audiences,
    audit,
    db,
    deliveries,
    delivery_claims,
    engines,
    runs,
    suppressions,
    tables,
    templates,
    workflows,
)
from outreach_core.adapters.store.tables import metadata
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.domain.templating import TemplateSource
from outreach_core.errors import IllegalTransition, InputError, NotFound

ACTOR = "test"
T = TypeVar("T")


def seed_workflow(ws: Workspace, tmp_path: Path, *, name: str = "wf", rows: int = 3) -> Workflow:
    """An audience of `rows` contacts, a template, an outbox engine, and a workflow tying them."""
    return services.setup_workflow(
        ws,
        name=name,
        parsed=ParsedFile(
            source="contacts.csv",
            columns=["email", "name"],
            email_column="email",
            rows=[{"email": f"person{i}@example.com", "name": f"Person {i}"} for i in range(rows)],
        ),
        template=TemplateSource("Hi {{ name }}", None, "Hi {{ name }}"),
        engine_url=f"outbox://{tmp_path}/outbox",
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=0, batch_size=7),
        actor=ACTOR,
    )


def delivery_row(run_id: int, n: int, **values: Any) -> dict[str, Any]:
    """A frozen delivery row for insert_deliveries."""
    email = f"person{n}@example.com"
    return {
        "run_id": run_id,
        "row_number": n,
        "email": email,
        "email_normalized": email,
        "variables": {"name": f"Person {n}"},
        "status": DeliveryStatus.PENDING,
        "reason": None,
        "attempts": 0,
        "updated_at": utcnow(),
    } | values


def queue_with_deliveries(ws: Workspace, workflow: Workflow, count: int) -> int:
    """A queued run with `count` pending deliveries already frozen."""
    run_id = services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)
    with ws.db.begin() as conn:
        deliveries.insert_deliveries(conn, (delivery_row(run_id, n) for n in range(count)))
    return run_id


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(i)` in `count` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # surfaced in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


# --- schema -------------------------------------------------------------------------------


def test_migrations_bring_the_database_to_head(workspace: Workspace) -> None:
    """Verify opening a workspace applies every migration: current revision is the head."""
    head = ScriptDirectory.from_config(db.alembic_config(workspace.db)).get_current_head()
    assert head is not None
    assert db.current_revision(workspace.db) == head


def test_upgrading_twice_is_a_no_op(workspace: Workspace, tmp_path: Path) -> None:
    """Verify a second upgrade keeps the revision, the tables and the data."""
    seed_workflow(workspace, tmp_path)
    before = sorted(sa.inspect(workspace.db).get_table_names())
    head = db.current_revision(workspace.db)
    db.upgrade(workspace.db)
    db.upgrade(workspace.db)
    head = ScriptDirectory.from_config(db.alembic_config(workspace.db)).get_current_head()
    assert db.current_revision(workspace.db) == head
    assert sorted(sa.inspect(workspace.db).get_table_names()) == before
    with workspace.db.connect() as conn:
        assert workflows.count_workflows(conn) == 1


def test_migrated_schema_matches_the_declared_tables(workspace: Workspace) -> None:
    """Verify autogenerate finds no difference between the migrations and `tables.metadata`.

    compare_type is on (alembic's default): UTCDateTime is compared through its impl,
    DateTime(timezone=True), which is exactly what the migration creates, so there is no noise.
    """
    with workspace.db.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        assert compare_metadata(context, metadata) == []


# --- repositories round-trip --------------------------------------------------------------


def test_audience_and_its_rows_round_trip(workspace: Workspace) -> None:
    """Verify an imported audience is stored with its columns and rows numbered from 1."""
    parsed = ParsedFile(
        source="people.csv",
        columns=["email", "first_name", "city"],
        email_column="email",
        rows=[
            {"email": "ann@example.com", "first_name": "Ann", "city": "Köln"},
            {"email": "bob@example.com", "first_name": "Bob", "city": ""},
        ],
    )
    audience = services.import_audience(workspace, parsed, name="People", actor=ACTOR)
    with workspace.db.connect() as conn:
        assert audiences.get_audience(conn, audience.id) == audience
        assert audiences.find_audience(conn, "People") == audience
        assert audiences.find_audience(conn, "Nobody") is None
        assert [a.name for a in audiences.list_audiences(conn)] == ["People"]
        assert list(audiences.iter_rows(conn, audience.id)) == list(enumerate(parsed.rows, 1))
        with pytest.raises(NotFound):
            audiences.get_audience(conn, audience.id + 100)
    assert audience.row_count == 2
    assert audience.columns == ["email", "first_name", "city"]
    with pytest.raises(InputError, match="exists already"):
        services.import_audience(workspace, parsed, name="People", actor=ACTOR)


def test_large_audience_is_inserted_in_chunks(workspace: Workspace) -> None:
    """Verify more rows than one INSERT chunk all arrive, in order."""
    rows = [{"email": f"p{i}@example.com"} for i in range(audiences.INSERT_CHUNK * 2 + 3)]
    parsed = ParsedFile(source="big.csv", columns=["email"], email_column="email", rows=rows)
    audience = services.import_audience(workspace, parsed, name="Big", actor=ACTOR)
    with workspace.db.connect() as conn:
        stored = list(audiences.iter_rows(conn, audience.id))
    assert [n for n, _ in stored] == list(range(1, len(rows) + 1))
    assert stored[-1][1] == rows[-1]


def test_template_versions_increment_and_stay_immutable(workspace: Workspace) -> None:
    """Verify each changed save adds a version; same content adds none; old versions remain."""
    first = services.save_template(
        workspace, "Invite", TemplateSource("v1", None, "a"), actor=ACTOR
    )
    second = services.save_template(
        workspace, "Invite", TemplateSource("v2", "<p>b</p>", "b"), actor=ACTOR
    )
    again = services.save_template(
        workspace, "Invite", TemplateSource("v2", "<p>b</p>", "b"), actor=ACTOR
    )
    assert (first.version, second.version) == (1, 2)
    assert first.id == second.id
    assert again == second
    with workspace.db.connect() as conn:
        assert templates.get_version(conn, first.version_id).subject == "v1"
        assert templates.current_version(conn, first.id) == second
        assert templates.list_templates(conn) == [second]
        assert templates.count_templates(conn) == 1
        with pytest.raises(NotFound):
            templates.current_version(conn, first.id + 100)


def test_engine_upsert_replaces_by_name_and_masks_the_secret(workspace: Workspace) -> None:
    """Verify saving an engine twice updates it in place; the password is encrypted and masked."""
    url = "smtp://mailer:s3cret-pw@mail.example.com:587?tls=starttls"
    first = services.save_engine(
        workspace, name="Mail", url=url, from_email="a@example.com", from_name="A", actor=ACTOR
    )
    second = services.save_engine(
        workspace, name="Mail", url=url, from_email="b@example.com", from_name="B", actor=ACTOR
    )
    assert second.id == first.id
    assert (second.from_email, second.from_name, second.kind) == ("b@example.com", "B", "smtp")
    assert "s3cret-pw" not in second.display_url
    assert "***" in second.display_url
    with workspace.db.connect() as conn:
        assert engines.list_engines(conn) == [second]
        assert engines.count_engines(conn) == 1
        stored = engines.get_encrypted_url(conn, first.id)
        entries = audit.latest(conn)
    assert "s3cret-pw" not in stored
    assert crypto.decrypt(workspace.fernet, stored) == url
    assert all("s3cret-pw" not in str(entry) for entry in entries)


def test_workflow_round_trips_with_its_options(workspace: Workspace, tmp_path: Path) -> None:
    """Verify a workflow comes back with its ids and SendOptions intact."""
    workflow = seed_workflow(workspace, tmp_path, name="Weekly")
    with workspace.db.connect() as conn:
        assert workflows.get_workflow(conn, workflow.id) == workflow
        assert workflows.list_workflows(conn) == [workflow]
        assert workflows.workflow_names(conn, [workflow.id]) == {workflow.id: "Weekly"}
        with pytest.raises(NotFound):
            workflows.get_workflow(conn, workflow.id + 100)
    assert workflow.options == SendOptions(rate=0, batch_size=7)


def test_queued_run_records_template_version_engine_and_options(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify queue_run stores a QUEUED run pinned to the template's current version."""
    workflow = seed_workflow(workspace, tmp_path)
    services.save_template(
        workspace, "wf template", TemplateSource("Newer {{ name }}", None, "x"), actor=ACTOR
    )
    first = services.queue_run(workspace, workflow.id, trigger="manual", actor=ACTOR)
    second = services.queue_run(
        workspace, workflow.id, trigger="cli", actor=ACTOR, options=SendOptions(rate=3)
    )
    with workspace.db.connect() as conn:
        run = runs.get_run(conn, first)
        current = templates.current_version(conn, workflow.template_id)
        assert [r.id for r in runs.list_runs(conn)] == [second, first]
        assert runs.count_runs(conn) == 2
        assert runs.get_run(conn, second).options == SendOptions(rate=3)
        with pytest.raises(NotFound, match="no run"):
            runs.get_run(conn, second + 100)
    assert run.status is RunStatus.QUEUED
    assert run.trigger == "manual"
    assert run.template_version_id == current.version_id and current.version == 2
    assert run.engine_id == workflow.engine_id
    assert run.options == workflow.options
    assert (run.worker_id, run.heartbeat_at, run.started_at, run.finished_at) == (None,) * 4


def test_deliveries_round_trip_in_frozen_order(workspace: Workspace, tmp_path: Path) -> None:
    """Verify inserted deliveries come back in order with their variables and defaults."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor=ACTOR)
    with workspace.db.begin() as conn:
        assert not deliveries.has_deliveries(conn, run_id)
        inserted = deliveries.insert_deliveries(
            conn,
            [
                delivery_row(run_id, 1, variables={"name": "Zoë", "n": 1, "tags": ["a"]}),
                delivery_row(
                    run_id,
                    2,
                    email="bad",
                    email_normalized=None,
                    status=DeliveryStatus.SKIPPED,
                    reason="invalid_syntax: no @",
                ),
            ],
        )
    with workspace.db.connect() as conn:
        stored = deliveries.list_deliveries(conn, run_id)
        assert deliveries.has_deliveries(conn, run_id)
        assert [d.id for d in deliveries.list_deliveries(conn, run_id, limit=1, offset=1)] == [
            stored[1].id
        ]
    assert inserted == 2
    assert [d.row_number for d in stored] == [1, 2]
    assert stored[0].variables == {"name": "Zoë", "n": 1, "tags": ["a"]}
    assert stored[0].status is DeliveryStatus.PENDING and stored[0].attempts == 0
    assert stored[1].email_normalized is None
    assert stored[1].reason == "invalid_syntax: no @"


def test_suppressions_are_idempotent_and_looked_up_in_bulk(workspace: Workspace) -> None:
    """Verify adding an address twice keeps the first reason; lookups return only matches."""
    with workspace.db.begin() as conn:
        suppressions.add_suppression(conn, "ann@example.com", reason="unsubscribed", now=utcnow())
        suppressions.add_suppression(conn, "ann@example.com", reason="bounced", now=utcnow())
        suppressions.add_suppression(conn, "bob@example.com", reason="bounced", now=utcnow())
    many = [f"p{i}@example.com" for i in range(1200)] + ["ann@example.com", "bob@example.com"]
    with workspace.db.connect() as conn:
        found = suppressions.suppressed_among(conn, many)
        assert suppressions.suppressed_among(conn, []) == {}
    assert found == {"ann@example.com": "unsubscribed", "bob@example.com": "bounced"}


def test_audit_log_records_each_service_action(workspace: Workspace, tmp_path: Path) -> None:
    """Verify service calls leave audit entries, newest first, with actor and subject."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = services.queue_run(workspace, workflow.id, trigger="test", actor="alice")
    with workspace.db.connect() as conn:
        entries = audit.latest(conn)
        assert len(audit.latest(conn, limit=2)) == 2
    assert [e["action"] for e in entries] == [
        "run.queue",
        "workflow.create",
        "engine.save",
        "template.save",
        "audience.import",
    ]
    assert entries[0]["actor"] == "alice"
    assert entries[0]["subject"] == f"run {run_id}"
    assert entries[0]["detail"] == {"workflow": "wf", "trigger": "test"}


# --- guarded status changes ---------------------------------------------------------------


def test_set_run_status_refuses_an_illegal_transition(workspace: Workspace, tmp_path: Path) -> None:
    """Verify QUEUED -> SENDING is refused before touching the row."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    with workspace.db.begin() as conn, pytest.raises(IllegalTransition, match="QUEUED to SENDING"):
        runs.set_run_status(
            conn, run_id, expected=RunStatus.QUEUED, target=RunStatus.SENDING, now=utcnow()
        )
    with workspace.db.connect() as conn:
        assert runs.get_run(conn, run_id).status is RunStatus.QUEUED


def test_set_run_status_refuses_a_stale_expected_status(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a legal transition from a status the run is no longer in raises and changes nothing."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    with (
        workspace.db.begin() as conn,
        pytest.raises(IllegalTransition, match=f"run {run_id} is QUEUED, not INITIALIZING"),
    ):
        runs.set_run_status(
            conn, run_id, expected=RunStatus.INITIALIZING, target=RunStatus.SENDING, now=utcnow()
        )
    with workspace.db.connect() as conn:
        assert runs.get_run(conn, run_id).status is RunStatus.QUEUED


def test_set_run_status_walks_the_lifecycle_and_final_state_releases_the_run(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify QUEUED -> INITIALIZING -> SENDING -> PAUSED -> SENDING -> COMPLETED stamps times."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    steps = [
        (RunStatus.QUEUED, RunStatus.INITIALIZING),
        (RunStatus.INITIALIZING, RunStatus.SENDING),
        (RunStatus.SENDING, RunStatus.PAUSED),
        (RunStatus.PAUSED, RunStatus.SENDING),
        (RunStatus.SENDING, RunStatus.COMPLETED),
    ]
    with workspace.db.begin() as conn:
        for expected, target in steps:
            runs.set_run_status(
                conn,
                run_id,
                expected=expected,
                target=target,
                now=utcnow(),
                reason=f"to {target}",
                worker_id="w1" if target is not RunStatus.COMPLETED else None,
            )
        run = runs.get_run(conn, run_id)
        with pytest.raises(IllegalTransition, match="final state"):
            runs.set_run_status(
                conn, run_id, expected=RunStatus.COMPLETED, target=RunStatus.SENDING, now=utcnow()
            )
    assert run.status is RunStatus.COMPLETED
    assert run.status_reason == "to COMPLETED"
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert (run.worker_id, run.heartbeat_at) == (None, None)
    assert str(run) == f"run {run_id} COMPLETED (to COMPLETED)"


# --- deliveries: uniqueness ---------------------------------------------------------------


def test_deliveries_are_unique_per_run_and_normalised_email(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a second delivery with the same (run, normalised email) raises IntegrityError."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = queue_with_deliveries(workspace, workflow, 1)
    with pytest.raises(sa.exc.IntegrityError), workspace.db.begin() as conn:
        deliveries.insert_deliveries(conn, [delivery_row(run_id, 0, row_number=99)])
    other_run = services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR)
    with workspace.db.begin() as conn:  # the same address in another run is fine
        deliveries.insert_deliveries(conn, [delivery_row(other_run, 0)])
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, run_id).total == 1


def test_deliveries_without_a_normalised_email_may_repeat(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify skipped rows with a NULL key do not collide with each other."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 0)
    skipped = {"email_normalized": None, "email": "", "status": DeliveryStatus.SKIPPED}
    with workspace.db.begin() as conn:
        deliveries.insert_deliveries(
            conn, [delivery_row(run_id, n, row_number=n, **skipped) for n in range(3)]
        )
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, run_id).skipped == 3


# --- claiming runs ------------------------------------------------------------------------


def test_claim_next_run_gives_a_run_to_one_claimant_only(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify the oldest QUEUED run goes to the first claimant; the second finds nothing."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR)
    now = utcnow()
    with workspace.db.begin() as conn:
        won = runs.claim_next_run(conn, worker_id="a", now=now)
    with workspace.db.begin() as conn:
        lost = runs.claim_next_run(conn, worker_id="b", now=now)
        lost_by_id = runs.claim_next_run(conn, worker_id="b", now=now, run_id=run_id)
    assert won is not None and won.id == run_id
    assert (won.status, won.worker_id, won.heartbeat_at, won.started_at) == (
        RunStatus.INITIALIZING,
        "a",
        now,
        now,
    )
    assert lost is None and lost_by_id is None


def test_claim_next_run_takes_the_oldest_or_the_one_named(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify claims go in id order unless a run id is given."""
    workflow = seed_workflow(workspace, tmp_path)
    ids = [services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR) for _ in range(3)]
    with workspace.db.begin() as conn:
        named = runs.claim_next_run(conn, worker_id="w", now=utcnow(), run_id=ids[2])
        oldest = runs.claim_next_run(conn, worker_id="w", now=utcnow())
    assert named is not None and named.id == ids[2]
    assert oldest is not None and oldest.id == ids[0]


def test_open_claim_is_skipped_by_a_concurrent_claimant_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    """Verify FOR UPDATE SKIP LOCKED: while A's claim is uncommitted, B takes the next run.

    PostgreSQL only: SQLite serialises writers, so B would simply wait for A's commit.
    """
    settings = Settings(
        _env_file=None, OUTREACH_DATA_DIR=tmp_path / "data", OUTREACH_DATABASE_URL=postgres_url
    )
    workspace = open_workspace(settings)
    try:
        workflow = seed_workflow(workspace, tmp_path)
        first, second = (
            services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR) for _ in range(2)
        )
        with workspace.db.connect() as conn_a, workspace.db.connect() as conn_b, conn_a.begin():
            claim_a = runs.claim_next_run(conn_a, worker_id="a", now=utcnow())
            with conn_b.begin():
                claim_b = runs.claim_next_run(conn_b, worker_id="b", now=utcnow())
                claim_b_again = runs.claim_next_run(conn_b, worker_id="b", now=utcnow())
    finally:
        workspace.close()
    assert claim_a is not None and claim_a.id == first
    assert claim_b is not None and claim_b.id == second
    assert claim_b_again is None


def test_concurrent_claimants_claim_every_run_exactly_once(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify N threads, each on its own connection, claim 20 queued runs once each, no lock error."""
    workflow = seed_workflow(workspace, tmp_path)
    queued = [
        services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR) for _ in range(20)
    ]

    def claim_all(i: int) -> list[int]:
        claimed = []
        with workspace.db.connect() as conn:
            while True:
                with conn.begin():
                    run = runs.claim_next_run(conn, worker_id=f"worker-{i}", now=utcnow())
                if run is None:
                    return claimed
                claimed.append(run.id)

    per_thread = in_threads(4, claim_all)
    claimed = [run_id for ids in per_thread for run_id in ids]
    assert sorted(claimed) == queued
    assert Counter(claimed).most_common(1)[0][1] == 1
    with workspace.db.connect() as conn:
        stored = {r.id: r for r in runs.list_runs(conn)}
    for i, ids in enumerate(per_thread):
        for run_id in ids:
            assert stored[run_id].status is RunStatus.INITIALIZING
            assert stored[run_id].worker_id == f"worker-{i}"


# --- claiming deliveries ------------------------------------------------------------------


def test_claim_pending_moves_a_batch_to_sending_for_the_worker(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify claim_pending takes at most `limit` pending deliveries in id order."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 5)
    with workspace.db.begin() as conn:
        batch = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=3, now=utcnow())
        rest = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=3, now=utcnow())
        none_left = delivery_claims.claim_pending(
            conn, run_id, worker_id="w", limit=3, now=utcnow()
        )
        stored = deliveries.list_deliveries(conn, run_id)
    assert [d.row_number for d in batch] == [0, 1, 2]
    assert [d.row_number for d in rest] == [3, 4]
    assert none_left == []
    assert all(d.status is DeliveryStatus.SENDING for d in stored)


def test_claim_pending_from_a_start_id_still_takes_rows_that_came_back_below_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a claim from `start_id` takes the rows from there first, then fills the batch
    with pending rows below it (a row that came back after a worker's claim is not lost)."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 6)
    with workspace.db.begin() as conn:
        first = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=3, now=utcnow())
        # the first row comes back to pending (as a taken-over or released claim does)
        conn.execute(
            tables.deliveries.update()
            .where(tables.deliveries.c.id == first[0].id)
            .values(status=DeliveryStatus.PENDING, claimed_by=None)
        )
        after = first[-1].id + 1
        forward = delivery_claims.claim_pending(
            conn, run_id, worker_id="w", limit=2, now=utcnow(), start_id=after
        )
        filled = delivery_claims.claim_pending(
            conn, run_id, worker_id="w", limit=3, now=utcnow(), start_id=forward[-1].id + 1
        )
    assert [d.row_number for d in forward] == [3, 4]
    assert [d.row_number for d in filled] == [0, 5]


def test_concurrent_claim_pending_never_hands_a_delivery_to_two_workers(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify 4 threads claiming batches of 7 from 150 deliveries get disjoint, complete sets."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 150)

    def claim_all(i: int) -> list[list[int]]:
        batches = []
        with workspace.db.connect() as conn:
            while True:
                with conn.begin():
                    batch = delivery_claims.claim_pending(
                        conn, run_id, worker_id=f"worker-{i}", limit=7, now=utcnow()
                    )
                if not batch:
                    return batches
                batches.append([d.id for d in batch])

    per_thread = in_threads(4, claim_all)
    claimed = [d for batches in per_thread for batch in batches for d in batch]
    assert all(len(batch) <= 7 for batches in per_thread for batch in batches)
    assert len(claimed) == len(set(claimed)) == 150
    with workspace.db.connect() as conn:
        assert deliveries.counts(conn, run_id).sending == 150
        owners = dict(
            conn.execute(
                sa.select(tables.deliveries.c.id, tables.deliveries.c.claimed_by).where(
                    tables.deliveries.c.run_id == run_id
                )
            ).all()
        )
    for i, batches in enumerate(per_thread):
        assert all(owners[d] == f"worker-{i}" for batch in batches for d in batch)


def test_record_outcome_only_from_sending(workspace: Workspace, tmp_path: Path) -> None:
    """Verify an outcome is recorded on a claimed delivery once; a second record raises."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 2)
    now = utcnow()
    with workspace.db.begin() as conn:
        [first] = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=1, now=now)
        deliveries.record_outcome(
            conn,
            first.id,
            target=DeliveryStatus.SENT,
            now=now,
            attempts=1,
            message_id="<m@example.com>",
        )
    with workspace.db.begin() as conn:
        with pytest.raises(IllegalTransition, match="no longer sending"):
            deliveries.record_outcome(
                conn, first.id, target=DeliveryStatus.FAILED, now=now, attempts=2
            )
        with pytest.raises(IllegalTransition, match="sending to pending"):
            deliveries.record_outcome(
                conn, first.id, target=DeliveryStatus.PENDING, now=now, attempts=2
            )
        sent = deliveries.list_deliveries(conn, run_id)[0]
    assert (sent.status, sent.attempts, sent.message_id, sent.sent_at) == (
        DeliveryStatus.SENT,
        1,
        "<m@example.com>",
        now,
    )


def test_release_unstarted_returns_claimed_deliveries_to_pending(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify only the named, still-sending deliveries go back to pending and lose their claim."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 4)
    now = utcnow()
    with workspace.db.begin() as conn:
        claimed = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=3, now=now)
        deliveries.record_outcome(
            conn, claimed[0].id, target=DeliveryStatus.SENT, now=now, attempts=1
        )
        released = delivery_claims.release_unstarted(
            conn, [claimed[0].id, claimed[1].id], now=utcnow()
        )
        assert delivery_claims.release_unstarted(conn, [], now=now) == 0
        counts = deliveries.counts(conn, run_id)
        claimed_by = conn.execute(
            sa.select(tables.deliveries.c.claimed_by).where(tables.deliveries.c.id == claimed[1].id)
        ).scalar_one()
    assert released == 1
    assert claimed_by is None
    assert (counts.sent, counts.sending, counts.pending) == (1, 1, 2)


def test_counts_group_deliveries_by_status(workspace: Workspace, tmp_path: Path) -> None:
    """Verify counts add up to the total and `unsettled` is failed + deferred + unknown."""
    run_id = queue_with_deliveries(workspace, seed_workflow(workspace, tmp_path), 0)
    statuses = [
        DeliveryStatus.PENDING,
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.SENDING,
        DeliveryStatus.CANCELLED,
    ]
    with workspace.db.begin() as conn:
        deliveries.insert_deliveries(
            conn, [delivery_row(run_id, n, status=s) for n, s in enumerate(statuses)]
        )
        counts = deliveries.counts(conn, run_id)
        empty = deliveries.counts(conn, run_id + 100)
    assert counts.model_dump() == {
        "total": 9,
        "pending": 1,
        "sending": 1,
        "sent": 2,
        "failed": 1,
        "deferred": 1,
        "skipped": 1,
        "unknown": 1,
        "cancelled": 1,
    }
    assert counts.unsettled == 3  # cancelled is final, not unsettled
    assert empty.total == 0


# --- heartbeats and take-over -------------------------------------------------------------


def test_take_over_run_fails_when_the_heartbeat_changed_meanwhile(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify take_over_run is a compare-and-swap on the holder and heartbeat it was shown."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    long_ago = utcnow() - timedelta(minutes=10)
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id="old", now=long_ago)
        snapshot = runs.get_run(conn, run_id)
        assert runs.heartbeat(conn, run_id, worker_id="old", now=utcnow())  # the holder woke up
        assert not runs.take_over_run(conn, snapshot, worker_id="new", now=utcnow())
        assert runs.get_run(conn, run_id).worker_id == "old"
        fresh = runs.get_run(conn, run_id)
        assert runs.take_over_run(conn, fresh, worker_id="new", now=utcnow())
        assert not runs.take_over_run(conn, fresh, worker_id="third", now=utcnow())
        run = runs.get_run(conn, run_id)
    assert run.worker_id == "new"
    assert run.status is RunStatus.INITIALIZING


def test_take_over_run_refuses_queued_and_final_runs(workspace: Workspace, tmp_path: Path) -> None:
    """Verify only active or paused runs can be taken over."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    with workspace.db.begin() as conn:
        assert not runs.take_over_run(conn, runs.get_run(conn, run_id), worker_id="w", now=utcnow())
        runs.set_run_status(
            conn, run_id, expected=RunStatus.QUEUED, target=RunStatus.CANCELLED, now=utcnow()
        )
        assert not runs.take_over_run(conn, runs.get_run(conn, run_id), worker_id="w", now=utcnow())


def test_heartbeat_and_release_only_work_for_the_holder(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify a non-holder cannot heartbeat or release a run; the holder can."""
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="t", actor=ACTOR
    )
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id="holder", now=utcnow())
        assert not runs.heartbeat(conn, run_id, worker_id="intruder", now=utcnow())
        runs.release_run(conn, run_id, worker_id="intruder")
        assert runs.get_run(conn, run_id).worker_id == "holder"
        runs.release_run(conn, run_id, worker_id="holder")
        run = runs.get_run(conn, run_id)
        assert not runs.heartbeat(conn, run_id, worker_id="holder", now=utcnow())
    assert (run.worker_id, run.heartbeat_at, run.status) == (None, None, RunStatus.INITIALIZING)


def test_orphaned_runs_are_active_runs_with_stale_or_no_heartbeat(
    workspace: Workspace, tmp_path: Path
) -> None:
    """Verify orphaned_runs lists stale and released active runs, not fresh or queued ones."""
    workflow = seed_workflow(workspace, tmp_path)
    stale, fresh, released, queued = (
        services.queue_run(workspace, workflow.id, trigger="t", actor=ACTOR) for _ in range(4)
    )
    now = utcnow()
    with workspace.db.begin() as conn:
        runs.claim_next_run(conn, worker_id="s", now=now - timedelta(minutes=5), run_id=stale)
        runs.claim_next_run(conn, worker_id="f", now=now, run_id=fresh)
        runs.claim_next_run(conn, worker_id="r", now=now, run_id=released)
        runs.release_run(conn, released, worker_id="r")
        orphans = runs.orphaned_runs(conn, heartbeat_before=now - timedelta(minutes=1))
    assert [r.id for r in orphans] == [stale, released]
    assert queued not in [r.id for r in orphans]


# --- time ---------------------------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(workspace: Workspace, tmp_path: Path) -> None:
    """Verify every stored datetime returns aware, in UTC, as the same instant that was stored."""
    workflow = seed_workflow(workspace, tmp_path)
    run_id = queue_with_deliveries(workspace, workflow, 1)
    berlin_summer = datetime(2024, 7, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with workspace.db.begin() as conn:
        claimed = runs.claim_next_run(conn, worker_id="w", now=berlin_summer)
        run = runs.get_run(conn, run_id)
        [delivery] = deliveries.list_deliveries(conn, run_id)
        [entry] = audit.latest(conn, limit=1)
    assert claimed is not None
    stamps = [
        run.created_at,
        run.started_at,
        run.heartbeat_at,
        claimed.heartbeat_at,
        delivery.updated_at,
        entry["at"],
    ]
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert run.heartbeat_at == berlin_summer
    assert run.heartbeat_at == datetime(2024, 7, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert abs(run.created_at - utcnow()) < timedelta(minutes=5)


def test_naive_datetime_is_refused_by_the_store(workspace: Workspace, tmp_path: Path) -> None:
    """Verify writing a naive datetime raises instead of storing an ambiguous time."""
    workflow = seed_workflow(workspace, tmp_path)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), workspace.db.begin() as conn:
        runs.insert_run(
            conn,
            workflow_id=workflow.id,
            trigger="t",
            options=SendOptions(),
            template_version_id=1,
            engine_id=workflow.engine_id,
            now=datetime(2024, 1, 1, 12, 0),
        )


def test_long_reasons_are_cut_to_fit_the_reason_index(workspace: Workspace, tmp_path: Path) -> None:
    """Verify a provider reply far over PostgreSQL's index-entry limit (4-byte characters) is
    recorded cut to MAX_REASON_CHARS, in one outcome, in a batch and at freeze time, and that
    repeated retries, each putting a note first, keep the reason within it, newest note first."""
    huge = "𝄞" * 5_000  # 20 kB in UTF-8: the reason index would refuse it whole
    run_id = services.queue_run(
        workspace, seed_workflow(workspace, tmp_path).id, trigger="test", actor=ACTOR
    )
    now = utcnow()
    with workspace.db.begin() as conn:
        deliveries.insert_deliveries(
            conn,
            [
                delivery_row(run_id, 0),
                delivery_row(run_id, 1),
                delivery_row(run_id, 2, status=DeliveryStatus.SKIPPED, reason="render_error: " + huge),
            ],
        )  # fmt: skip
        first, second = delivery_claims.claim_pending(conn, run_id, worker_id="w", limit=2, now=now)
        deliveries.record_outcome(
            conn, first.id, target=DeliveryStatus.DEFERRED, now=now, attempts=1, reason=huge
        )
        deliveries.record_outcomes(
            conn,
            [{"delivery_id": second.id, "target": DeliveryStatus.UNKNOWN, "attempts": 1,
              "reason": "ambiguous: " + huge}],
            now=now,
        )  # fmt: skip
    with workspace.db.connect() as conn:
        reasons = [d.reason for d in deliveries.list_deliveries(conn, run_id)]
    assert [len(r) for r in reasons] == [deliveries.MAX_REASON_CHARS] * 3
    assert all(r.endswith("…") for r in reasons)
    assert reasons[1].startswith("ambiguous: 𝄞") and reasons[2].startswith("render_error: 𝄞")

    for retry in range(1, 30):
        with workspace.db.begin() as conn:
            deliveries.requeue(
                conn, run_id, statuses=[DeliveryStatus.DEFERRED, DeliveryStatus.UNKNOWN],
                note=f"retry {retry} on request; before: ", now=now,
            )  # fmt: skip
            for claimed in delivery_claims.claim_pending(
                conn, run_id, worker_id="w", limit=2, now=now
            ):
                deliveries.record_outcome(
                    conn, claimed.id, target=DeliveryStatus.DEFERRED, now=now, attempts=1
                )
    with workspace.db.connect() as conn:
        retried = [d for d in deliveries.list_deliveries(conn, run_id) if d.attempts > 1]
    assert len(retried) == 2
    for delivery in retried:
        assert len(delivery.reason) <= deliveries.MAX_REASON_CHARS
        assert delivery.reason.startswith("retry 29 on request; before: retry 28")
