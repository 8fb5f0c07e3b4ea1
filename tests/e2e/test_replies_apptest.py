"""What came back, under AppTest, over the demo after a sent run with mailbox events recorded:
Home's reply and bounce rates, Results' funnel to replied and its charts of what came back, and
the Replies page (who answered, newest first; a hostile subject shown as written; automatic
replies counted, not listed; the search, the workflow filter and the CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from streamlit.testing.v1 import AppTest

from outreach_core.adapters.store import deliveries
from outreach_core.adapters.store.delivery_events import DeliveryEvent, record_event
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.domain.models import Delivery
from tests.csv_attacks import assert_no_formula
from tests.e2e.dashboard import HOME, Demo, send_run
from tests.e2e.test_csv_downloads_apptest import downloads  # noqa: F401 (a fixture)
from tests.e2e.test_preview_no_markdown import markdown_sources
from tests.e2e.test_results_pages import figures, trace_totals

#: a subject that would be a link, bold text and a script URL if anything interpreted it
HOSTILE = "[open me](javascript:alert(1)) **now** <a href='https://evil.example/x'>x</a>"
FORMULA = '=HYPERLINK("https://evil.example","hi")'


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def seed(demo: Demo) -> tuple[int, list[Delivery]]:
    """A run sent; replies from deliveries 0, 1 (hostile subject) and 2 (a formula subject),
    an automatic reply from 3, hard bounces of 4 and 5, a soft bounce of 6."""
    run_id = send_run(demo.ws, demo.workflow)
    now = utcnow()
    with demo.ws.db.begin() as conn:
        sent = [d for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"]
        plan = [
            (FeedbackKind.REPLY, "Re: Spring workshop", "thread", 50),
            (FeedbackKind.REPLY, HOSTILE, "sender", 40),
            (FeedbackKind.REPLY, FORMULA, "thread", 30),
            (FeedbackKind.AUTO_REPLY, "Out of office", None, 20),
            (FeedbackKind.HARD_BOUNCE, "550 5.1.1 no such user", "dsn", 10),
            (FeedbackKind.HARD_BOUNCE, "550 5.1.1 no such user", "dsn", 10),
            (FeedbackKind.SOFT_BOUNCE, "452 4.2.2 mailbox full", "dsn", 10),
        ]
        for d, (kind, detail, evidence, minutes_ago) in zip(sent, plan, strict=False):
            record_event(
                conn,
                DeliveryEvent(
                    delivery_id=d.id,
                    kind=kind,
                    message_key=f"1:1:{d.id}",
                    at=now - timedelta(minutes=minutes_ago),
                    detail=detail,
                    evidence=evidence,
                ),
                now=now,
            )
    return run_id, sent


def test_home_shows_reply_and_bounce_rates_beside_the_delivery_rate(demo: Demo) -> None:
    """Verify the reply rate (replied / delivered) and bounce rate (hard bounced / sent) of
    both windows, and that their help says how each is computed."""
    _, sent = seed(demo)

    at = start()

    metrics = {}
    for m in at.metric:
        metrics.setdefault(m.label, []).append(m)
    delivered = len(sent) - 2
    assert [m.value for m in metrics["Reply rate"]] == [f"{3 / delivered:.1%}"] * 2
    assert [m.value for m in metrics["Bounce rate"]] == [f"{2 / len(sent):.1%}"] * 2
    assert "replied / delivered" in metrics["Reply rate"][0].proto.help
    assert "hard bounces / sent" in metrics["Bounce rate"][0].proto.help
    labels = [m.label for m in at.metric]
    assert labels.index("Reply rate") == labels.index("Delivery rate") + 1


def test_results_funnel_ends_with_delivered_and_replied(demo: Demo) -> None:
    """Verify the run's funnel continues sent → delivered → replied, and the charts of what
    came back count each delivery once under its outcome, per day, engine and step."""
    _, sent = seed(demo)

    at = start("pages/results.py")
    specs = figures(at)

    [funnel] = [spec for title, spec in specs.items() if title.startswith("Funnel of run")]
    assert funnel["data"][0]["y"][-3:] == ["sent", "delivered", "replied"]
    assert funnel["data"][0]["x"][-3:] == [len(sent), len(sent) - 2, 3]
    expected = {"reply": 3, "auto-reply": 1, "hard bounce": 2, "soft bounce": 1}
    per_day = trace_totals(specs["Replies, bounces and complaints per day (UTC)"], "x")
    assert {name: sum(days.values()) for name, days in per_day.items()} == expected
    by_engine = trace_totals(specs["What came back by engine"], "y")
    assert by_engine == {name: {"Local outbox": n} for name, n in expected.items()}
    by_step = trace_totals(specs["What came back by workflow step"], "y")
    assert by_step == {name: {"step 1": n} for name, n in expected.items()}


def test_results_says_no_data_yet_when_nothing_came_back(demo: Demo) -> None:
    """Verify the three charts of what came back show their empty state."""
    send_run(demo.ws, demo.workflow)

    at = start("pages/results.py")
    specs = figures(at)

    for title in (
        "Replies, bounces and complaints per day (UTC)",
        "What came back by engine",
        "What came back by workflow step",
    ):
        assert specs[title]["data"] == []
        assert specs[title]["layout"]["annotations"][0]["text"].startswith("No data yet")


def test_replies_page_lists_who_answered_as_plain_text(
    demo: Demo,
    downloads: dict[str, Callable[[], str]],  # noqa: F811
) -> None:
    """Verify the Replies page: newest first, one row per reply, the hostile subject exactly as
    written in a grid cell and nowhere in markdown, no link column; the automatic reply counted
    and not listed; the CSV holds the rows with formula cells neutralised."""
    _, sent = seed(demo)

    at = start("pages/replies.py")

    assert [m.label for m in at.metric] == ["Replies", "Automatic replies"]
    assert [m.value for m in at.metric] == ["3", "1"]
    [grid] = at.dataframe
    frame = grid.value
    # newest first: delivery 2 answered 30 minutes ago, 1 forty, 0 fifty
    assert list(frame["email"]) == [sent[2].email, sent[1].email, sent[0].email]
    assert list(frame["subject"]) == [FORMULA, HOSTILE, "Re: Spring workshop"]
    assert list(frame["workflow"]) == [demo.workflow.name] * 3
    assert list(frame["step"]) == [1, 1, 1]
    assert frame["evidence"][1] == "by sender"
    assert "Out of office" not in set(frame["subject"])
    assert frame["at"].iloc[0] > frame["at"].iloc[1] > frame["at"].iloc[2]
    assert not [text for text in markdown_sources(at) if "evil.example" in text]
    assert "LinkColumn" not in grid.proto.columns
    assert "link" not in grid.proto.columns.lower()

    made = downloads["replies.csv"]()
    rows = list(csv.DictReader(io.StringIO(made)))
    assert [r["email"] for r in rows] == [sent[2].email, sent[1].email, sent[0].email]
    assert rows[1]["subject"] == HOSTILE
    assert_no_formula(made, expect=[FORMULA])


def test_replies_search_workflow_filter_and_empty_state(demo: Demo) -> None:
    """Verify the address search and the workflow filter narrow the list, and a range with no
    reply says so."""
    _, sent = seed(demo)
    at = start("pages/replies.py")

    at.text_input(key="replies_search").input(sent[1].email.upper()[:6]).run()
    assert not at.exception
    assert list(at.dataframe[0].value["email"]) == [sent[1].email]

    at.text_input(key="replies_search").input("").run()
    at.selectbox(key="replies_workflow").set_value(demo.workflow.id).run()
    assert len(at.dataframe[0].value) == 3

    past = datetime.now(UTC).date() - timedelta(days=400)
    at.date_input(key="replies_dates").set_value((past, past + timedelta(days=3))).run()
    assert not at.exception
    assert not at.dataframe
    assert [i.value for i in at.info] == ["No reply in this range and filter yet."]
    assert [m.value for m in at.metric] == ["0", "0"]
