"""Home's delivery KPIs and the Results page under AppTest: the charts' numbers equal counts
queried directly from the ledger, the ledger pages and filters, every table has its CSV, and
no engine secret is shown."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from outreach_core import services
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.store import deliveries
from outreach_core.adapters.store.delivery_events import DeliveryEvent, record_event
from outreach_core.adapters.store.tables import deliveries as ledger
from outreach_core.adapters.store.tables import runs
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain import result_figures
from outreach_core.domain.clock import utcnow
from outreach_core.domain.feedback_rules import FeedbackKind
from outreach_core.services import results
from outreach_core.services.demo import load_demo
from outreach_core.ui import charts, feedback_charts
from tests.e2e.dashboard import HOME, Demo, send_run

SECRET = "s3cr3t-Passw0rd-xyz"


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> dict[str, dict]:
    """Every plotly chart's figure spec by its title, binary-encoded arrays as lists."""
    found = {}
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        spec["data"] = [{k: _plain(v) for k, v in trace.items()} for trace in spec["data"]]
        found[spec["layout"]["title"]["text"]] = spec
    return found


def _plain(value: object) -> object:
    """Plotly sends numeric arrays as {"dtype", "bdata"} (base64 of the raw values)."""
    if isinstance(value, dict) and {"dtype", "bdata"} <= set(value):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return value


def trace_totals(spec: dict, axis: str) -> dict[str, dict[str, int]]:
    """{trace name: {category: value}} of a bar figure (categories on `axis`)."""
    value_axis = "y" if axis == "x" else "x"
    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for trace in spec["data"]:
        for category, value in zip(trace[axis], trace[value_axis], strict=True):
            totals[trace["name"]][str(category)] = int(value)
    return dict(totals)


def seed_failures(ws: Workspace, run_id: int) -> None:
    """Turn three of the run's sent deliveries into refusals with codes and reasons."""
    with ws.db.begin() as conn:
        ids = [d.id for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"][:3]
        for delivery_id, status, code, reason in [
            (ids[0], "failed", 550, "permanent: 550 no such user"),
            (ids[1], "failed", 550, "permanent: 550 no such user"),
            (ids[2], "deferred", 421, "transient: 421 try again later"),
        ]:
            conn.execute(
                ledger.update()
                .where(ledger.c.id == delivery_id)
                .values(status=status, reply_code=code, reason=reason, sent_at=None)
            )


#: every outcome's colour, sending and what came back
PALETTE = charts.STATUS_COLORS | feedback_charts.FEEDBACK_COLORS


def seed_came_back(ws: Workspace, run_id: int) -> None:
    """Replies to two of the run's sent deliveries, an auto-reply and a hard bounce."""
    kinds = [FeedbackKind.REPLY, FeedbackKind.REPLY, FeedbackKind.AUTO_REPLY,
             FeedbackKind.HARD_BOUNCE]  # fmt: skip
    now = utcnow()
    with ws.db.begin() as conn:
        sent = [d for d in deliveries.list_deliveries(conn, run_id) if d.status == "sent"]
        for d, kind in zip(sent, kinds, strict=False):
            record_event(
                conn,
                DeliveryEvent(
                    delivery_id=d.id,
                    kind=kind,
                    message_key=f"1:1:{d.id}",
                    at=now,
                    detail=f"Re: hello {d.id}",
                    evidence="thread",
                ),
                now=now,
            )


def direct_counts(ws: Workspace) -> Counter[tuple[str, str]]:
    """(status, reason word or '') of every delivery, straight from the table."""
    with ws.db.connect() as conn:
        rows = conn.execute(sa.select(ledger.c.status, ledger.c.reason)).all()
    return Counter(
        (status, (reason or "").split(":", 1)[0] if status == "skipped" else "")
        for status, reason in rows
    )


def test_home_shows_kpis_of_7_and_30_days_equal_to_the_ledger(demo: Demo) -> None:
    """Verify Home's Sent/Failed/Skipped/Delivery rate for both windows after a demo run."""
    run_id = send_run(demo.ws, demo.workflow)
    seed_failures(demo.ws, run_id)
    counts = direct_counts(demo.ws)
    sent = counts[("sent", "")]
    failed = counts[("failed", "")] + counts[("deferred", "")]
    skipped = sum(n for (status, _), n in counts.items() if status == "skipped")

    at = start()

    labels = ["Sent", "Failed", "Skipped", "Delivery rate", "Reply rate", "Bounce rate"]
    assert [m.label for m in at.metric][4:] == labels * 2
    values = [m.value for m in at.metric][4:]
    rate = f"{sent / (sent + failed):.1%}"
    # nothing came back yet: no reply, no bounce
    assert values == [str(sent), str(failed), str(skipped), rate, "0.0%", "0.0%"] * 2
    assert at.download_button(key="csv_kpis").proto.label == "Download KPIs as CSV"
    recent = at.download_button(key="csv_recent_runs").proto
    assert recent.label == "Download recent runs as CSV"


def test_results_charts_equal_counts_queried_from_the_ledger(demo: Demo) -> None:
    """Verify the per-day, domain, engine, error and funnel figures against the ledger."""
    run_id = send_run(demo.ws, demo.workflow)
    seed_failures(demo.ws, run_id)
    counts = direct_counts(demo.ws)

    at = start("pages/results.py")
    specs = figures(at)

    zone = "UTC"  # AppTest has no browser: the page falls back to UTC
    per_day = trace_totals(specs[f"Outcomes per day ({zone})"], "x")
    today = datetime.now(UTC).date().isoformat()
    shown = {name: sum(days.values()) for name, days in per_day.items()}
    expected = {
        (f"skipped: {word}" if status == "skipped" else status): n
        for (status, word), n in counts.items()
    }
    assert shown == expected
    assert all(list(days) == [today] for days in per_day.values())

    domains = trace_totals(specs["Outcome by recipient domain (top 20)"], "y")
    with demo.ws.db.connect() as conn:
        rows = conn.execute(sa.select(ledger.c.email_normalized, ledger.c.status)).all()
    by_domain: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for email, status in rows:
        by_domain[status][email.split("@")[1] if email else result_figures.NO_ADDRESS] += 1
    assert domains == {s: dict(d) for s, d in by_domain.items()}

    engines = trace_totals(specs["Outcome by engine"], "y")
    assert engines == {
        status: {"Local outbox": sum(n for (s, _), n in counts.items() if s == status)}
        for status in {s for s, _ in counts}
    }

    errors = trace_totals(specs["Reply codes and error reasons (failed, deferred, unknown)"], "x")
    assert errors == {"failed": {"550": 2}, "deferred": {"421": 1}}

    [funnel] = [spec for title, spec in specs.items() if title.startswith("Funnel of run")]
    total = sum(counts.values())
    invalid = sum(n for (s, w), n in counts.items() if s == "skipped")
    sent = counts[("sent", "")]
    # nothing came back: every sent message counts as delivered, none replied
    assert funnel["data"][0]["x"] == [total, total - invalid, total - invalid, sent, sent, 0]

    latency = specs["Send latency per run (engine accept time)"]
    assert [t["name"] for t in latency["data"]] == ["p50", "p90", "p99"]
    assert latency["data"][0]["x"] == [f"run {run_id} · {demo.workflow.name}"]


def test_every_chart_has_titles_axes_and_consistent_status_colours(demo: Demo) -> None:
    """Verify every figure has a title and axis titles, and a status has one colour
    wherever it appears."""
    run_id = send_run(demo.ws, demo.workflow)
    seed_failures(demo.ws, run_id)
    seed_came_back(demo.ws, run_id)

    at = start("pages/results.py")

    colours: dict[str, set[str]] = defaultdict(set)
    for title, spec in figures(at).items():
        assert title
        layout = spec["layout"]
        if not title.startswith("Funnel"):
            assert layout["xaxis"]["title"]["text"], title
            assert layout["yaxis"]["title"]["text"], title
        for trace in spec["data"]:
            if trace.get("type") == "bar" and trace["name"] in PALETTE:
                colours[trace["name"]].add(trace["marker"]["color"])
    assert {name: c for name, c in colours.items()} == {name: {PALETTE[name]} for name in colours}
    assert {"sent", "failed", "deferred", "skipped"} <= set(colours)
    assert {"reply", "auto-reply", "hard bounce"} <= set(colours)
    # one day of data still draws a bar most of a day wide, not a hairline
    per_day = next(spec for title, spec in figures(at).items() if title.startswith("Outcomes"))
    assert {trace["width"] for trace in per_day["data"]} == {0.8 * 86_400_000}


def test_filters_narrow_the_charts_and_an_inverted_range_is_refused(demo: Demo) -> None:
    """Verify the date filter: a range before the run shows the empty state."""
    send_run(demo.ws, demo.workflow)
    at = start("pages/results.py")

    past = datetime.now(UTC).date() - timedelta(days=400)
    at.date_input(key="results_dates").set_value((past, past + timedelta(days=3))).run()

    assert not at.exception
    specs = figures(at)
    assert all(not spec["data"] for spec in specs.values())
    assert "No run was created in this range." in [i.value for i in at.info]
    assert at.caption[-1].value.startswith("Page 1 of 1 · 0 deliveries match")


def test_engine_and_workflow_filters_narrow_every_chart_and_the_ledger(demo: Demo) -> None:
    """Verify picking an engine that sent nothing empties the charts and the ledger, and
    picking the demo's workflow shows its run again."""
    send_run(demo.ws, demo.workflow)
    idle = services.save_engine(
        demo.ws, name="Idle relay", url="smtp://127.0.0.1:2525", from_email="team@example.com",
        from_name="Team", actor="test",
    )  # fmt: skip
    at = start("pages/results.py")

    at.selectbox(key="results_engine").set_value(idle.id).run()
    assert not at.exception
    assert all(not spec["data"] for title, spec in figures(at).items() if "Funnel" not in title)
    assert at.caption[-1].value.startswith("Page 1 of 1 · 0 deliveries match")

    at.selectbox(key="results_engine").set_value(None).run()
    at.selectbox(key="results_workflow").set_value(demo.workflow.id).run()
    per_day = next(s for t, s in figures(at).items() if t.startswith("Outcomes per day"))
    assert sum(sum(trace["y"]) for trace in per_day["data"]) == 54
    assert at.caption[-1].value.startswith("Page 1 of 2 · 54 deliveries match")


def test_ledger_search_state_filter_and_recipient_history(demo: Demo) -> None:
    """Verify the ledger table follows the search and state filter, and one address's
    history lists its deliveries of both runs."""
    first = send_run(demo.ws, demo.workflow)
    seed_failures(demo.ws, first)
    with demo.ws.db.connect() as conn:
        failed = [d for d in deliveries.list_deliveries(conn, first) if d.status == "failed"]
    at = start("pages/results.py")

    table = at.dataframe[0].value
    assert list(table.columns) == charts.LEDGER_COLUMNS
    assert len(table) == results.LEDGER_PAGE_SIZE

    at.selectbox(key="ledger_status").set_value("failed").run()
    assert sorted(at.dataframe[0].value["email"]) == sorted(d.email for d in failed)

    at.selectbox(key="ledger_status").set_value(None).run()
    prefix = failed[0].email[:6]
    at.text_input(key="ledger_search").input(prefix).run()
    shown = set(at.dataframe[0].value["email"])
    assert failed[0].email in shown
    assert all(email.lower().startswith(prefix.lower()) for email in shown)

    second = send_run(demo.ws, demo.workflow)  # refused last time, so sent again now
    at.text_input(key="history_email").input(failed[0].email.upper()).run()
    history = at.dataframe[1].value
    assert {e.lower() for e in history["email"]} == {failed[0].email.lower()}
    by_run = {(r, s, None if pd.isna(c) else int(c)) for r, s, c in
              zip(history["run_id"], history["status"], history["reply_code"], strict=True)}  # fmt: skip
    assert {(first, "failed", 550), (second, "sent", None)} <= by_run
    assert list(history["run_id"]) == sorted(history["run_id"], reverse=True)


def test_results_page_never_shows_an_engine_secret(demo: Demo) -> None:
    """Verify a password in an engine URL appears nowhere on the page or in its CSVs."""
    engine = services.save_engine(
        demo.ws, name="Relay", url=f"smtp://user:{SECRET}@127.0.0.1:2525",
        from_email="team@example.com", from_name="Team", actor="test",
    )  # fmt: skip
    run_id = send_run(demo.ws, demo.workflow)
    with demo.ws.db.begin() as conn:
        conn.execute(ledger.update().where(ledger.c.run_id == run_id).values(engine_id=engine.id))
        conn.execute(runs.update().where(runs.c.id == run_id).values(engine_id=engine.id))

    at = start("pages/results.py")

    page_text = "\n".join(
        [str(e.proto) for e in at.get("plotly_chart")]
        + [f.value.to_csv() for f in at.dataframe]
        + [str(e.proto) for e in at.main]
    )
    assert "Relay" in page_text
    assert SECRET not in page_text
    flt = result_figures.ResultsFilter(start=datetime.now(UTC).date(), end=datetime.now(UTC).date())
    data = results.load(demo.ws, flt)
    for frame in (
        charts.group_frame(data.by_engine, "engine"),
        charts.ledger_frame(results.ledger(demo.ws, flt).rows, UTC),
    ):
        assert SECRET not in charts.csv_bytes(frame).decode()


def test_chart_csv_holds_the_figures_numbers(demo: Demo) -> None:
    """Verify the per-day CSV (what its download button serves) has the chart's rows."""
    run_id = send_run(demo.ws, demo.workflow)
    seed_failures(demo.ws, run_id)
    flt = result_figures.ResultsFilter(start=datetime.now(UTC).date(), end=datetime.now(UTC).date())
    data = results.load(demo.ws, flt)

    parsed = list(
        csv.DictReader(io.StringIO(charts.csv_bytes(charts.day_frame(data.by_day)).decode()))
    )

    counts = direct_counts(demo.ws)
    assert {row["outcome"]: int(row["count"]) for row in parsed} == {
        (f"skipped: {word}" if status == "skipped" else status): n
        for (status, word), n in counts.items()
    }
    assert {row["day"] for row in parsed} == {datetime.now(UTC).date().isoformat()}
    assert list(parsed[0]) == ["day", "outcome", "count"]


def test_reason_filter_offers_the_reasons_in_the_ledger(
    data_dir: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify the Reason filter lists "All", then exactly the reason words of the page's range
    (queried here from the table), narrowed by the state filter; each one shows the count of
    its rows; a reason the new state does not have falls back to "All"."""
    monkeypatch.setenv("OUTREACH_DATABASE_URL", db_url)
    ws = open_workspace(
        Settings(_env_file=None, OUTREACH_DATA_DIR=data_dir, OUTREACH_DATABASE_URL=db_url)
    )
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        run_id = send_run(ws, workflow)
        seed_failures(ws, run_id)
        with ws.db.begin() as conn:  # one skip before the page's 30 days, a reason of its own
            old_id = conn.execute(
                sa.select(sa.func.max(ledger.c.id)).where(ledger.c.status == "sent")
            ).scalar_one()
            conn.execute(
                ledger.update()
                .where(ledger.c.id == old_id)
                .values(status="skipped", reason="render_error: old", updated_at=utcnow() - timedelta(days=60))
            )  # fmt: skip
        since = datetime.combine(datetime.now(UTC).date() - timedelta(days=29), time(0), UTC)
        with ws.db.connect() as conn:
            stored = conn.execute(
                sa.select(ledger.c.status, ledger.c.reason).where(ledger.c.updated_at >= since)
            ).all()
    finally:
        ws.close()
    in_range = Counter((s, r.split(":", 1)[0]) for s, r in stored if r is not None)
    words = sorted({word for _, word in in_range})
    assert {"permanent", "transient"} <= set(words)
    assert "render_error" not in words

    at = start("pages/results.py")

    reason = at.selectbox(key="ledger_reason")
    assert reason.options == ["All", *words]
    for word in words:
        at.selectbox(key="ledger_reason").set_value(word).run()
        expected = sum(n for (_, w), n in in_range.items() if w == word)
        assert at.caption[-1].value.startswith(f"Page 1 of 1 · {expected} deliveries match")
        shown = at.dataframe[0].value["reason"]
        assert [r.split(":", 1)[0] for r in shown] == [word] * expected

    at.selectbox(key="ledger_reason").set_value(words[0]).run()
    at.selectbox(key="ledger_status").set_value("failed").run()
    assert at.selectbox(key="ledger_reason").options == ["All", "permanent"]
    assert at.session_state["ledger_reason"] is None  # the earlier pick is not a failed reason
    assert at.caption[-1].value.startswith("Page 1 of 1 · 2 deliveries match")
