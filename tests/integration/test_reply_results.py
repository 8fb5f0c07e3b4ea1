"""What came back, on SQLite and PostgreSQL: a run is sent for real (to the outbox engine),
mailbox events are recorded with `record_event` and a webhook bounce with `set_feedback`, and
every figure (per day, engine, step; Home's rates; the funnel; the Replies list; the ledger and
the run's CSV) is checked against what was seeded."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from outreach_core.adapters.store import deliveries, feedback
from outreach_core.adapters.store.delivery_events import DeliveryEvent, record_event
from outreach_core.adapters.store.tables import deliveries as deliveries_table
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.models import Feedback, Workflow
from outreach_core.domain.result_figures import ResultsFilter
from outreach_core.services import replies, results, run_summaries
from tests.e2e.dashboard import send_run
from tests.integration.test_store import seed_workflow

#: when the answers came back: two Paris days, one of them across local midnight
MON_EVENING = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 in Paris, Monday 2 March
TUE_NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 in Paris, Tuesday 3 March
TUE_NOON = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)
HOSTILE_SUBJECT = "Re: [click](javascript:alert(1)) <b>bold</b> <a href='https://evil.test'>x</a>"


@pytest.fixture
def sent(workspace: Workspace, tmp_path: Path) -> tuple[Workflow, int, list[int]]:
    """A workflow of 8 contacts sent for real; its run id and its delivery ids in order."""
    workflow = seed_workflow(workspace, tmp_path, name="spring", rows=8)
    run_id = send_run(workspace, workflow)
    with workspace.db.connect() as conn:
        ids = [d.id for d in deliveries.list_deliveries(conn, run_id)]
    assert len(ids) == 8
    return workflow, run_id, ids


def make_event(
    delivery_id: int, kind: FeedbackKind, at: datetime, **extra: object
) -> DeliveryEvent:
    return DeliveryEvent(
        delivery_id=delivery_id,
        kind=kind,
        message_key=f"1:7:{delivery_id}{kind.value}{at.timestamp():.0f}",
        at=at,
        **extra,  # type: ignore[arg-type]
    )


def seed_feedback(ws: Workspace, ids: list[int], *, when: datetime | None = None) -> None:
    """Replies from deliveries 0 (twice), 1 and 2; an auto-reply from 3; a hard bounce of 4
    (mailbox) and 5 (webhook); a soft bounce of 6; delivery 2 is a step-2 follow-up. Each at
    its time of March 2026, or all at `when`."""
    now = utcnow()

    def event(delivery_id: int, kind: FeedbackKind, at: datetime, **extra: object) -> DeliveryEvent:
        return make_event(delivery_id, kind, when or at, **extra)

    with ws.db.begin() as conn:
        conn.execute(
            deliveries_table.update().where(deliveries_table.c.id == ids[2]).values(step=2)
        )
        record_event(conn, event(ids[0], FeedbackKind.REPLY, MON_EVENING, detail="Re: Hi",
                                 evidence="thread"), now=now)  # fmt: skip
        record_event(conn, event(ids[0], FeedbackKind.REPLY, TUE_NOON, detail="Re: Re: Hi",
                                 evidence="thread"), now=now)  # fmt: skip
        record_event(conn, event(ids[1], FeedbackKind.REPLY, TUE_NIGHT, detail=HOSTILE_SUBJECT,
                                 evidence="sender"), now=now)  # fmt: skip
        record_event(conn, event(ids[2], FeedbackKind.REPLY, TUE_NOON, detail="Step two answer",
                                 evidence="thread"), now=now)  # fmt: skip
        record_event(conn, event(ids[3], FeedbackKind.AUTO_REPLY, TUE_NOON,
                                 detail="Out of office"), now=now)  # fmt: skip
        record_event(conn, event(ids[4], FeedbackKind.HARD_BOUNCE, MON_EVENING, status="5.1.1",
                                 evidence="dsn"), now=now)  # fmt: skip
        record_event(conn, event(ids[6], FeedbackKind.SOFT_BOUNCE, TUE_NIGHT, status="4.2.2",
                                 evidence="dsn"), now=now)  # fmt: skip
        feedback.set_feedback(conn, ids[5], Feedback.BOUNCED, now=when or TUE_NOON)


def paris(**extra: object) -> ResultsFilter:
    return ResultsFilter(
        start=date(2026, 3, 1), end=date(2026, 3, 4), timezone="Europe/Paris", **extra
    )


def test_outcomes_per_local_day_engine_and_step(workspace: Workspace, sent) -> None:
    """Verify each delivery counts once, under its outcome, on the Paris day it came back
    (00:30 Paris is the next day), by engine and by step."""
    _, _, ids = sent
    seed_feedback(workspace, ids)

    data = replies.load_feedback(workspace, paris())

    by_day = {(r.day, r.outcome): r.count for r in data.by_day}
    assert by_day == {
        # delivery 0 replied first on Monday: feedback_at keeps the first reply's time
        (date(2026, 3, 2), "replied"): 1,
        (date(2026, 3, 2), "bounced"): 1,
        (date(2026, 3, 3), "replied"): 2,
        (date(2026, 3, 3), "auto_replied"): 1,
        (date(2026, 3, 3), "bounced"): 1,
        (date(2026, 3, 3), "soft_bounced"): 1,
    }
    assert {(r.group, r.outcome): r.count for r in data.by_engine} == {
        ("spring engine", "replied"): 3,
        ("spring engine", "auto_replied"): 1,
        ("spring engine", "bounced"): 2,
        ("spring engine", "soft_bounced"): 1,
    }
    assert [(r.group, r.outcome, r.count) for r in data.by_step] == [
        ("step 1", "replied", 2),
        ("step 1", "auto_replied", 1),
        ("step 1", "bounced", 2),
        ("step 1", "soft_bounced", 1),
        ("step 2", "replied", 1),
    ]
    # a day outside the range, or another workflow, counts nothing
    assert replies.load_feedback(workspace, paris(workflow_id=9999)).by_day == []
    quiet = ResultsFilter(start=date(2026, 3, 5), end=date(2026, 3, 6))
    assert replies.load_feedback(workspace, quiet).by_step == []


def test_home_rates_and_the_run_funnel_continue_to_replied(workspace: Workspace, sent) -> None:
    """Verify reply rate = replied / (sent - hard bounced) and bounce rate = hard bounced /
    sent over the messages sent in each window, and the funnel's delivered and replied. The
    answers are dated two hours before the messages were sent (a skewed clock): they count."""
    _, run_id, ids = sent
    seed_feedback(workspace, ids, when=utcnow() - timedelta(hours=2))

    kpis = results.kpis(workspace)

    for kpi in kpis:
        assert (kpi.sent, kpi.bounced, kpi.replied) == (8, 2, 3)
        assert kpi.reply_rate == pytest.approx(3 / 6)
        assert kpi.bounce_rate == pytest.approx(2 / 8)
    steps = results.run_funnel(workspace, run_id)
    assert [(s.step, s.count) for s in steps] == [
        ("audience", 8),
        ("valid", 8),
        ("rendered", 8),
        ("sent", 8),
        ("delivered", 6),
        ("replied", 3),
    ]
    assert results.default_funnel_run(workspace, [run_id]) == run_id


def test_replies_list_who_answered_newest_first(workspace: Workspace, sent) -> None:
    """Verify the Replies list: one row per reply (auto-replies counted, not listed), newest
    first, with workflow, step, subject as written and evidence; the search and the workflow
    filter narrow it."""
    workflow, run_id, ids = sent
    seed_feedback(workspace, ids)

    found = replies.list_replies(workspace, paris())

    assert (found.total, found.auto_replies) == (4, 1)
    rows = [(r.delivery_id, r.at, r.step, r.subject, r.evidence) for r in found.rows]
    assert rows == [
        # the same minute: the reply recorded last first
        (ids[2], TUE_NOON, 2, "Step two answer", "in thread"),
        (ids[0], TUE_NOON, 1, "Re: Re: Hi", "in thread"),
        (ids[1], TUE_NIGHT, 1, HOSTILE_SUBJECT, "by sender"),
        (ids[0], MON_EVENING, 1, "Re: Hi", "in thread"),
    ]
    first = found.rows[0]
    assert (first.workflow, first.run_id, first.engine) == ("spring", run_id, "spring engine")
    assert first.email == f"person{ids.index(first.delivery_id)}@example.com"

    searched = replies.list_replies(workspace, paris(), search="  PERSON1@ ")
    assert [r.delivery_id for r in searched.rows] == [ids[1]]
    assert (searched.total, searched.auto_replies) == (1, 0)
    assert replies.list_replies(workspace, paris(workflow_id=workflow.id)).total == 4
    assert replies.list_replies(workspace, paris(workflow_id=9999)).rows == []
    assert len(replies.list_replies(workspace, paris(), limit=2).rows) == 2


def test_ledger_and_run_csv_carry_step_outcome_and_its_time(workspace: Workspace, sent) -> None:
    """Verify the Results ledger rows and the run's CSV hold step, feedback and feedback_at."""
    _, run_id, ids = sent
    seed_feedback(workspace, ids)
    today = utcnow().date()

    page = results.ledger(workspace, ResultsFilter(start=today - timedelta(days=1), end=today))

    by_id = {r.delivery_id: r for r in page.rows}
    assert (by_id[ids[0]].feedback, by_id[ids[0]].feedback_at) == ("replied", MON_EVENING)
    assert (by_id[ids[2]].step, by_id[ids[2]].feedback) == (2, "replied")
    assert (by_id[ids[7]].feedback, by_id[ids[7]].feedback_at) == (None, None)

    text = run_summaries.run_outcome_csv(workspace, run_id)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == run_summaries.EXPORT_COLUMNS
    assert list(rows[0])[-3:] == ["step", "feedback", "feedback_at"]
    by_email = {r["email"]: r for r in rows}
    assert by_email["person0@example.com"]["feedback"] == "replied"
    assert by_email["person0@example.com"]["feedback_at"] == MON_EVENING.isoformat()
    assert by_email["person2@example.com"]["step"] == "2"
    assert by_email["person5@example.com"]["feedback"] == "bounced"
    assert by_email["person7@example.com"]["feedback"] == ""
    with workspace.db.connect() as conn:
        stored = conn.execute(
            sa.select(sa.func.count()).where(deliveries_table.c.feedback.is_not(None))
        ).scalar_one()
    assert stored == 7
