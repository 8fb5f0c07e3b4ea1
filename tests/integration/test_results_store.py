"""Results aggregates on SQLite and PostgreSQL: every number is checked against the rows
seeded, including the day a delivery falls on in the viewer's zone around midnight."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from outreach_core import services
from outreach_core.adapters.store import deliveries, engines, result_aggregates
from outreach_core.adapters.store.tables import deliveries as deliveries_table
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import result_figures
from outreach_core.domain.models import Workflow
from outreach_core.domain.states import DeliveryStatus
from outreach_core.services import results
from tests.integration.test_store import ACTOR, seed_workflow

from conftest import fresh_schema

WINTER = datetime(2026, 1, 15, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-icu"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The shared backends, and PostgreSQL under a language-aware default collation: the
    ledger's searches and reason filter are index ranges, which must not depend on it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'outreach.db'}"
    elif request.param == "postgresql":
        yield request.getfixturevalue("postgres_url")
    else:
        yield from fresh_schema(request.getfixturevalue("postgres_icu_server"))


def add(ws: Workspace, run_id: int, rows: list[dict[str, Any]]) -> None:
    """Insert ledger rows with explicit outcome times (and any other column)."""
    base = {
        "run_id": run_id,
        "row_number": None,
        "variables": {},
        "reason": None,
        "attempts": 1,
        "engine_id": None,
        "reply_code": None,
        "latency_ms": None,
    }
    with ws.db.begin() as conn:
        deliveries.insert_deliveries(
            conn,
            (
                base | {"email_normalized": row["email"].lower(), "row_number": i} | row
                for i, row in enumerate(rows)
            ),
        )


def row(email: str, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"email": email, "status": status, "updated_at": at} | extra


def new_run(ws: Workspace, workflow: Workflow) -> int:
    return services.queue_run(ws, workflow.id, trigger="test", actor=ACTOR)


@pytest.fixture
def workflow(workspace: Workspace, tmp_path: Path) -> Workflow:
    return seed_workflow(workspace, tmp_path)


def window(start: date, end: date, tz: str = "UTC", **extra: Any) -> result_figures.ResultsFilter:
    return result_figures.ResultsFilter(start=start, end=end, timezone=tz, **extra)


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Paris is UTC+1 in January: local midnight is 23:00 UTC the day before
        ("Europe/Paris", datetime(2026, 1, 14, 22, 59, tzinfo=UTC), datetime(2026, 1, 14, 23, 1, tzinfo=UTC)),
        # Kolkata is UTC+5:30: a half-hour zone, local midnight at 18:30 UTC
        ("Asia/Kolkata", datetime(2026, 1, 14, 18, 29, tzinfo=UTC), datetime(2026, 1, 14, 18, 31, tzinfo=UTC)),
        # New York is UTC-5 in January: local midnight at 05:00 UTC the same day
        ("America/New_York", datetime(2026, 1, 15, 4, 59, tzinfo=UTC), datetime(2026, 1, 15, 5, 1, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_days_are_the_viewers_local_days_around_midnight(
    workspace: Workspace, workflow: Workflow, zone: str, before: datetime, after: datetime
) -> None:
    """Verify a delivery a minute before local midnight counts on the 14th, one a minute
    after on the 15th, in whole-hour, half-hour and negative-offset zones."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [row("a@x.org", "sent", before), row("b@x.org", "sent", after),
                            row("c@x.org", "failed", after)])  # fmt: skip

    data = results.load(workspace, window(date(2026, 1, 13), date(2026, 1, 16), zone))

    by_day = {(r.day, r.outcome): r.count for r in data.by_day}
    assert by_day == {
        (date(2026, 1, 14), "sent"): 1,
        (date(2026, 1, 15), "sent"): 1,
        (date(2026, 1, 15), "failed"): 1,
    }


def test_days_across_a_dst_change_use_each_sides_offset(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify Paris days on both sides of the 25 October 2026 change (UTC+2 to UTC+1)."""
    run_id = new_run(workspace, workflow)
    summer_late = datetime(2026, 10, 23, 22, 30, tzinfo=UTC)  # 24 Oct 00:30 in Paris (UTC+2)
    winter_late = datetime(2026, 10, 26, 23, 30, tzinfo=UTC)  # 27 Oct 00:30 in Paris (UTC+1)
    winter_early = datetime(2026, 10, 26, 22, 30, tzinfo=UTC)  # 26 Oct 23:30 in Paris
    add(workspace, run_id, [row("a@x.org", "sent", summer_late), row("b@x.org", "sent", winter_late),
                            row("c@x.org", "sent", winter_early)])  # fmt: skip

    data = results.load(workspace, window(date(2026, 10, 20), date(2026, 10, 31), "Europe/Paris"))

    assert {(r.day, r.count) for r in data.by_day} == {
        (date(2026, 10, 24), 1),
        (date(2026, 10, 26), 1),
        (date(2026, 10, 27), 1),
    }


def test_range_ends_are_local_midnights(workspace: Workspace, workflow: Workflow) -> None:
    """Verify the date range includes its last local day and nothing after it."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("in@x.org", "sent", datetime(2026, 1, 15, 22, 59, tzinfo=UTC)),  # 15th 23:59 Paris
        row("out@x.org", "sent", datetime(2026, 1, 15, 23, 0, tzinfo=UTC)),  # 16th 00:00 Paris
        row("early@x.org", "sent", datetime(2026, 1, 14, 22, 59, tzinfo=UTC)),  # 14th in Paris
    ])  # fmt: skip

    data = results.load(workspace, window(date(2026, 1, 15), date(2026, 1, 15), "Europe/Paris"))

    assert [(r.day, r.count) for r in data.by_day] == [(date(2026, 1, 15), 1)]
    page = results.ledger(workspace, window(date(2026, 1, 15), date(2026, 1, 15), "Europe/Paris"))
    assert [r.email for r in page.rows] == ["in@x.org"]


def test_skipped_are_split_by_reason_word(workspace: Workspace, workflow: Workflow) -> None:
    """Verify skipped deliveries are stacked per reason word, other outcomes per status."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("a@x.org", "skipped", WINTER, reason="no_mx: x.org has no MX", attempts=0),
        row("b@x.org", "skipped", WINTER, reason="no_mx: x.org has no MX", attempts=0),
        row("c@y.org", "skipped", WINTER, reason="duplicate", attempts=0),
        row("d@y.org", "deferred", WINTER, reason="transient: 421 busy"),
        row("e@y.org", "unknown", WINTER, reason="interrupted mid-send; not resent"),
        row("f@y.org", "pending", WINTER, attempts=0),
    ])  # fmt: skip

    data = results.load(workspace, window(date(2026, 1, 15), date(2026, 1, 15)))

    assert [(r.outcome, r.count) for r in data.by_day] == [
        ("deferred", 1),
        ("unknown", 1),
        ("skipped: duplicate", 1),
        ("skipped: no_mx", 2),
    ]


def test_kpis_count_each_window_from_its_own_start(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify the 7- and 30-day KPIs and the delivery rate against seeded outcome times."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("a@x.org", "sent", now - timedelta(days=1)),
        row("b@x.org", "sent", now - timedelta(days=6)),
        row("c@x.org", "failed", now - timedelta(days=2)),
        row("d@x.org", "sent", now - timedelta(days=10)),
        row("e@x.org", "unknown", now - timedelta(days=20)),
        row("f@x.org", "deferred", now - timedelta(days=29)),
        row("g@x.org", "skipped", now - timedelta(days=3), reason="duplicate"),
        row("old@x.org", "sent", now - timedelta(days=31)),
        row("future@x.org", "sent", now + timedelta(hours=1)),
    ])  # fmt: skip

    week, month = results.kpis(workspace, now=now)

    assert (week.days, week.sent, week.failed, week.skipped) == (7, 2, 1, 1)
    assert (month.days, month.sent, month.failed, month.skipped) == (30, 3, 3, 1)
    assert week.delivery_rate == pytest.approx(2 / 3)
    assert month.delivery_rate == pytest.approx(0.5)


def test_domains_keep_the_top_ones_and_sum_the_rest(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify domain counts, the top-N cut with '(other)', and invalid rows named as such."""
    run_id = new_run(workspace, workflow)
    seeded = [row(f"p{i}@big.example", "sent", WINTER) for i in range(3)]
    seeded += [row(f"q{i}@Mid.Example", "failed", WINTER) for i in range(2)]
    seeded += [row(f"r@small{i}.example", "sent", WINTER) for i in range(3)]
    seeded += [
        row("not an address", "skipped", WINTER, email_normalized=None, reason="invalid_syntax")
    ]
    add(workspace, run_id, seeded)

    data = results.load(workspace, window(date(2026, 1, 15), date(2026, 1, 15)))
    counts = {(g.group, g.status): g.count for g in data.by_domain}
    assert counts == {
        ("big.example", "sent"): 3,
        ("mid.example", "failed"): 2,
        ("small0.example", "sent"): 1,
        ("small1.example", "sent"): 1,
        ("small2.example", "sent"): 1,
        (result_figures.NO_ADDRESS, "skipped"): 1,
    }

    with workspace.db.connect() as conn:
        rows = result_aggregates.counts_by_domain(
            conn, window(date(2026, 1, 15), date(2026, 1, 15)).scope()
        )
    top = result_figures.top_groups(rows, top=2, none_label=result_figures.NO_ADDRESS)
    assert [(g.group, g.status, g.count) for g in top] == [
        ("big.example", "sent", 3),
        ("mid.example", "failed", 2),
        (result_figures.OTHER, "sent", 3),
        (result_figures.OTHER, "skipped", 1),
    ]


def test_engine_falls_back_to_the_runs_engine_and_filters_apply(
    workspace: Workspace, workflow: Workflow, tmp_path: Path
) -> None:
    """Verify deliveries without an engine count under their run's engine, named (never the
    URL), and the workflow and engine filters narrow every aggregate."""
    other_engine = services.save_engine(
        workspace, name="Second", url="smtp://user:s3cret@127.0.0.1:2525",
        from_email="team@example.com", from_name="B", actor=ACTOR,
    )  # fmt: skip
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("a@x.org", "sent", WINTER),  # engine NULL: the run's engine
        row("b@x.org", "sent", WINTER, engine_id=other_engine.id),
        row("c@x.org", "failed", WINTER, engine_id=other_engine.id, reply_code=550,
            reason="permanent: 550 no such user"),
    ])  # fmt: skip
    other_workflow = seed_workflow(workspace, tmp_path, name="other")
    add(workspace, new_run(workspace, other_workflow), [row("z@x.org", "sent", WINTER)])

    day = date(2026, 1, 15)
    data = results.load(workspace, window(day, day))
    with workspace.db.connect() as conn:
        first_name = engines.get_engine(conn, workflow.engine_id).name
        other_name = engines.get_engine(conn, other_workflow.engine_id).name
    assert {(g.group, g.status): g.count for g in data.by_engine} == {
        (first_name, "sent"): 1,
        ("Second", "sent"): 1,
        ("Second", "failed"): 1,
        (other_name, "sent"): 1,
    }
    assert "s3cret" not in data.model_dump_json()

    only_second = results.load(workspace, window(day, day, engine_id=other_engine.id))
    assert sum(r.count for r in only_second.by_day) == 2
    only_first_workflow = results.load(workspace, window(day, day, workflow_id=workflow.id))
    assert sum(r.count for r in only_first_workflow.by_day) == 3
    assert results.ledger(workspace, window(day, day, engine_id=other_engine.id)).total == 2


def test_errors_by_reply_code_or_reason_word(workspace: Workspace, workflow: Workflow) -> None:
    """Verify the error histogram: codes when stored, else the reason's word."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("a@x.org", "failed", WINTER, reply_code=550, reason="permanent: 550 unknown user"),
        row("b@x.org", "failed", WINTER, reply_code=550, reason="permanent: 550 unknown user"),
        row("c@x.org", "deferred", WINTER, reply_code=421, reason="transient: 421 try later"),
        row("d@x.org", "unknown", WINTER, reason="interrupted mid-send; not resent"),
        row("e@x.org", "failed", WINTER, reason="render_error: 'name' is undefined"),
        row("f@x.org", "sent", WINTER),
    ])  # fmt: skip

    data = results.load(workspace, window(date(2026, 1, 15), date(2026, 1, 15)))

    assert [(e.label, e.status, e.count) for e in data.errors] == [
        ("550", "failed", 2),
        ("421", "deferred", 1),
        ("interrupted mid-send", "unknown", 1),
        ("render_error", "failed", 1),
    ]


def test_latency_percentiles_per_run(workspace: Workspace, workflow: Workflow) -> None:
    """Verify p50/p90/p99 per run from the stored latencies (exact under 100 ms)."""
    run_a = new_run(workspace, workflow)
    run_b = new_run(workspace, workflow)
    add(
        workspace, run_a, [row(f"a{i}@x.org", "sent", WINTER, latency_ms=i + 1) for i in range(100)]
    )
    add(workspace, run_b, [row("b@x.org", "sent", WINTER, latency_ms=1234),
                           row("c@x.org", "failed", WINTER)])  # fmt: skip
    # the runs were created now; widen the range to include today and the seeded day
    data = results.load(workspace, window(date(2026, 1, 1), date.today() + timedelta(days=1)))

    rows = {r.run_id: r for r in data.latency}
    assert (rows[run_a].sends, rows[run_a].p50, rows[run_a].p90, rows[run_a].p99) == (
        100,
        50,
        90,
        99,
    )
    assert (rows[run_b].sends, rows[run_b].p50, rows[run_b].p99) == (1, 1200, 1200)


def test_funnel_of_one_run(workspace: Workspace, workflow: Workflow) -> None:
    """Verify audience → valid → rendered → sent → delivered → replied from one run's ledger
    (nothing came back: every sent message counts as delivered)."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        row("a@x.org", "sent", WINTER),
        row("b@x.org", "sent", WINTER),
        row("c@x.org", "failed", WINTER, reason="permanent: 550"),
        row("d@x.org", "skipped", WINTER, reason="render_error: undefined"),
        row("bad", "skipped", WINTER, email_normalized=None, reason="invalid_syntax: no @"),
        row("e@x.org", "skipped", WINTER, reason="suppressed: on the list"),
    ])  # fmt: skip

    steps = results.run_funnel(workspace, run_id)

    assert [(s.step, s.count) for s in steps] == [
        ("audience", 6),
        ("valid", 4),
        ("rendered", 3),
        ("sent", 2),
        ("delivered", 2),
        ("replied", 0),
    ]


def test_ledger_pages_searches_and_filters(workspace: Workspace, workflow: Workflow) -> None:
    """Verify pages (newest first, sizes, count), prefix search in either case, state and
    reason filters."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [row(f"ann{i:02}@x.org", "sent", WINTER) for i in range(25)] + [
        row("Bob@X.org", "failed", WINTER, reason="permanent: 550"),
        row("bobby@x.org", "skipped", WINTER, reason="no_mx: x"),
        row("annex", "skipped", WINTER, email_normalized=None, reason="invalid_syntax: no @"),
    ])  # fmt: skip
    day = window(date(2026, 1, 15), date(2026, 1, 15))

    first = results.ledger(workspace, day, page=1, page_size=10)
    third = results.ledger(workspace, day, page=3, page_size=10)
    assert (first.total, first.pages, len(first.rows), len(third.rows)) == (28, 3, 10, 8)
    past_the_end = results.ledger(workspace, day, page=9, page_size=10)
    assert (past_the_end.page, [r.delivery_id for r in past_the_end.rows]) == (
        3,
        [r.delivery_id for r in third.rows],
    )
    ids = [r.delivery_id for r in first.rows]
    assert ids == sorted(ids, reverse=True)

    anns = results.ledger(workspace, day, email_prefix="ANN", page_size=100)
    assert anns.total == 25  # the normalised address matches whatever the case typed
    assert results.ledger(workspace, day, email_prefix="ann", page_size=100).total == 26
    assert {r.email for r in results.ledger(workspace, day, email_prefix="bob").rows} == {
        "Bob@X.org",
        "bobby@x.org",
    }
    failed = results.ledger(workspace, day, status="failed")
    assert [(r.email, r.reason) for r in failed.rows] == [("Bob@X.org", "permanent: 550")]
    no_mx = results.ledger(workspace, day, reason="no_mx")
    assert [r.email for r in no_mx.rows] == ["bobby@x.org"]

    with pytest.raises(ValueError, match="pages start at 1"):
        results.ledger(workspace, day, page=0)


def test_search_pages_are_the_matches_in_the_ledgers_order(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify a search's pages (read from the address indexes) hold exactly the matching rows,
    newest outcome first as in the unsearched ledger, split across pages without overlap, and
    leave out matches outside the date range."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [
        *(row(f"ann{i:02}@x.org", "sent", WINTER + timedelta(minutes=(i * 7) % 25))
          for i in range(25)),
        row("bob@x.org", "sent", WINTER),
        row("ann-old@x.org", "sent", WINTER - timedelta(days=3)),
    ])  # fmt: skip
    day = window(date(2026, 1, 15), date(2026, 1, 15))

    everything = results.ledger(workspace, day, page_size=100).rows
    expected = [r.delivery_id for r in everything if r.email.startswith("ann")]
    pages = [results.ledger(workspace, day, email_prefix="Ann", page=n, page_size=10)
             for n in (1, 2, 3)]  # fmt: skip

    assert [p.total for p in pages] == [25, 25, 25]
    assert [r.delivery_id for p in pages for r in p.rows] == expected


def test_reason_kinds_are_the_words_present_in_scope(
    workspace: Workspace, workflow: Workflow, tmp_path: Path
) -> None:
    """Verify the reason words offered equal the words of the rows in the range, workflow,
    engine and state, including words that sort next to each other (`a`, `a: x`, `a-b: y`,
    `a;c`), and the reason filter matches exactly the rows of each word."""
    other = seed_workflow(workspace, tmp_path / "other", name="Other")
    run_id, other_run = new_run(workspace, workflow), new_run(workspace, other)
    reasons = ["a", "a: x", "a: y", "a-b: y", "a;c", "b: 1", "interrupted mid-send; not resent"]
    add(workspace, run_id, [
        *(row(f"r{i}@x.org", "skipped", WINTER, reason=r) for i, r in enumerate(reasons)),
        row("f@x.org", "failed", WINTER, reason="permanent: 550"),
        row("s@x.org", "sent", WINTER),
        row("old@x.org", "skipped", WINTER - timedelta(days=40), reason="render_error: old"),
    ])  # fmt: skip
    add(workspace, other_run, [row("o@x.org", "skipped", WINTER, reason="no_mx: x.org")])
    day = window(date(2026, 1, 15), date(2026, 1, 15))

    def words(status: str | None = None, run: int | None = None) -> list[str]:
        """The words of the day's reasons, cut in Python from rows read as stored."""
        table = deliveries_table
        with workspace.db.connect() as conn:
            stored = conn.execute(
                sa.select(table.c.reason, table.c.status, table.c.run_id).where(
                    table.c.updated_at >= WINTER, table.c.updated_at < WINTER + timedelta(days=1)
                )
            ).all()
        return sorted({
            reason.split(":", 1)[0] for reason, s, r in stored
            if reason is not None and status in (None, s) and run in (None, r)
        })  # fmt: skip

    kinds = results.reason_kinds(workspace, day)
    assert kinds == words()
    assert {"a", "a-b", "a;c", "b", "interrupted mid-send; not resent", "no_mx"} <= set(kinds)
    assert "render_error" not in kinds  # only before the range
    assert results.reason_kinds(workspace, day, status="failed") == ["permanent"]
    only_first = window(date(2026, 1, 15), date(2026, 1, 15), workflow_id=workflow.id)
    assert results.reason_kinds(workspace, only_first) == words(run=run_id)
    assert results.reason_kinds(workspace, window(date(2026, 1, 1), date(2026, 1, 2))) == []

    for word in kinds:
        matched = results.ledger(workspace, day, reason=word, page_size=100)
        assert sorted(r.reason.split(":", 1)[0] for r in matched.rows) == [word] * matched.total
    assert results.ledger(workspace, day, reason="a", page_size=100).total == 3
    assert results.ledger(workspace, day, reason="a: x").total == 0  # no word holds a colon


def test_recipient_history_across_runs(workspace: Workspace, workflow: Workflow) -> None:
    """Verify one address's deliveries from every run, newest first, found in any case."""
    first = new_run(workspace, workflow)
    second = new_run(workspace, workflow)
    add(workspace, first, [row("Ann@x.org", "sent", WINTER), row("bob@x.org", "sent", WINTER)])
    add(workspace, second, [row("ann@x.org", "failed", WINTER + timedelta(days=1), reply_code=550)])

    history = results.recipient_history(workspace, "ANN@x.org")

    assert [(h.run_id, h.status, h.reply_code) for h in history] == [
        (second, "failed", 550),
        (first, "sent", None),
    ]
    assert all(h.workflow == workflow.name for h in history)


def test_record_outcomes_store_reply_code_and_latency(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify the two new outcome fields reach the ledger through record_outcomes."""
    run_id = new_run(workspace, workflow)
    add(workspace, run_id, [row("a@x.org", "sending", WINTER), row("b@x.org", "sending", WINTER)])
    with workspace.db.begin() as conn:
        ids = [d.id for d in deliveries.list_deliveries(conn, run_id)]
        deliveries.record_outcomes(
            conn,
            [
                {"delivery_id": ids[0], "target": DeliveryStatus.SENT, "attempts": 1,
                 "latency_ms": 42},
                {"delivery_id": ids[1], "target": DeliveryStatus.FAILED, "attempts": 1,
                 "reply_code": 550, "reason": "permanent: 550"},
            ],
            now=WINTER,
        )  # fmt: skip
        stored = conn.execute(
            sa.select(deliveries_table.c.latency_ms, deliveries_table.c.reply_code).order_by(
                deliveries_table.c.id
            )
        ).all()
    assert [tuple(r) for r in stored] == [(42, None), (None, 550)]


def test_a_long_range_is_counted_in_several_statements(
    workspace: Workspace, workflow: Workflow
) -> None:
    """Verify a range longer than one statement's days counts its first and last days."""
    first = date(2025, 9, 1)
    last = first + timedelta(days=result_aggregates.DAYS_PER_STATEMENT + 40)
    run_id = new_run(workspace, workflow)
    at = [datetime(d.year, d.month, d.day, 12, tzinfo=UTC) for d in (first, last)]
    add(workspace, run_id, [row("a@x.org", "sent", at[0]),
                            row("b@x.org", "skipped", at[1], reason="duplicate")])  # fmt: skip

    data = results.load(workspace, window(first, last, "America/New_York"))

    assert [(r.day, r.outcome, r.count) for r in data.by_day] == [
        (first, "sent", 1),
        (last, "skipped: duplicate", 1),
    ]
