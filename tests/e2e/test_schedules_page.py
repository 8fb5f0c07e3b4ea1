"""The Schedules page under AppTest (create, preview five local run times, edit, disable, run
now, daemon status) and in headless Chromium (schedules.png)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from outreach_core import RunStatus, services
from outreach_core.adapters.store import daemons, runs, schedules
from outreach_core.domain.cadence import CadenceKind, MissedSlotPolicy
from outreach_core.domain.clock import utcnow
from outreach_core.services.demo import load_demo
from tests.dns_server import DnsServer
from tests.e2e.dashboard import (
    HOME,
    READY,
    SCREENSHOTS,
    Demo,
    launched_chromium,
    open_test_workspace,
    opened_page,
    serve_app,
)

PAGE = "pages/schedules.py"


def start(page: str = PAGE) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=30).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upcoming(at: AppTest) -> list[str]:
    [listing] = [m.value for m in at.markdown if m.value.startswith("- ")]
    return [line.removeprefix("- ") for line in listing.splitlines()]


def test_new_daily_schedule_previews_five_local_runs_and_saves(demo: Demo) -> None:
    """Verify an empty page says so and that no daemon runs; a daily 09:00 in New York shows
    five runs at 09:00 local; saving lists it with its next run."""
    at = start()
    assert at.title[0].value == "Schedules"
    assert any("No schedule yet" in i.value for i in at.info)
    assert "No scheduler daemon is running" in at.warning[0].value

    at.selectbox(key="sched_tz_0").set_value("America/New_York").run()
    slots = upcoming(at)
    assert len(slots) == 5
    assert all(" 09:00 E" in s for s in slots)  # EST or EDT: local 09:00 whatever the season

    at.button(key="sched_save").click().run()
    assert not at.exception
    assert at.success[0].value.startswith("Saved schedule 1: daily at 09:00 America/New_York")
    [row] = at.dataframe[0].value.to_dict("records")
    assert row["Workflow"] == demo.workflow.name
    assert row["Cadence"] == "daily at 09:00"
    assert row["On"] is True
    assert row["Next run"] == slots[0]
    with demo.ws.db.connect() as conn:
        [stored] = schedules.list_schedules(conn)
    assert stored.next_run_at > utcnow()


def test_weekly_monthly_and_bad_input(demo: Demo) -> None:
    """Verify weekly shows only the chosen days, monthly on 31 falls back to the month's last
    day, and a weekly cadence without days is refused with the reason."""
    at = start()
    at.selectbox(key="sched_kind_0").set_value(CadenceKind.WEEKLY).run()
    at.multiselect(key="sched_days_0").set_value([1, 3]).run()
    assert {s.split("(")[1].rstrip(")") for s in upcoming(at)} == {"Tue", "Thu"}

    at.multiselect(key="sched_days_0").set_value([]).run()
    assert "at least one day" in at.error[0].value
    assert "sched_save" not in [b.key for b in at.button]  # no saving while invalid
    assert not any(m.value.startswith("- ") for m in at.markdown)

    at.selectbox(key="sched_kind_0").set_value(CadenceKind.MONTHLY).run()
    at.number_input(key="sched_dom_0").set_value(31).run()
    days = [int(s.split(" ")[0].split("-")[2]) for s in upcoming(at)]
    assert all(d >= 28 for d in days)  # the 31st, or the last day of a shorter month


def test_edit_disable_and_run_now(demo: Demo) -> None:
    """Verify an existing schedule can be switched to run-late with a send window, disabled,
    and run now (a QUEUED run carrying the window)."""
    at = start()
    at.checkbox(key="sched_windowed_0").check().run()
    at.button(key="sched_save").click().run()
    at.selectbox(key="schedule_pick").set_value(1).run()
    at.radio(key="sched_policy_1").set_value(MissedSlotPolicy.RUN_LATE).run()
    at.number_input(key="sched_late_1").set_value(3.0).run()
    at.button(key="sched_save").click().run()
    [row] = at.dataframe[0].value.to_dict("records")
    assert row["Missed"] == "late within 3 h"
    assert row["Window"] == "09:00-17:00"

    at.button(key="sched_toggle").click().run()
    assert at.success[0].value == "Schedule 1 disabled."
    assert at.dataframe[0].value.to_dict("records")[0]["On"] is False
    assert at.dataframe[0].value.to_dict("records")[0]["Next run"] == ""

    at.button(key="sched_run_now").click().run()
    assert not [s for s in at.success if "queued" in s.value]  # asked first, nothing queued
    assert at.checkbox(key="sched_confirm").label == "I confirm sending to 50 recipients"
    at.checkbox(key="sched_confirm").check().run()
    at.button(key="sched_now").click().run()
    message = at.success[0].value
    assert message.startswith("Run ") and "queued" in message
    run_id = int(message.split()[1])
    with demo.ws.db.connect() as conn:
        run = runs.get_run(conn, run_id)
    assert run.status is RunStatus.QUEUED and run.trigger == "manual"
    assert run.options.send_window == "09:00-17:00"


def test_daemon_status_on_schedules_and_home(demo: Demo) -> None:
    """Verify a registered daemon with a fresh heartbeat shows as alive on both pages."""
    with demo.ws.db.begin() as conn:
        daemons.register(conn, "test-daemon", now=utcnow())
    at = start()
    assert any("1 daemon(s) alive" in s.value for s in at.success)
    home = AppTest.from_file(HOME, default_timeout=30).run()
    assert any("1 daemon(s) alive" in s.value for s in home.success)


def test_missed_slots_after_an_outage_are_listed_per_schedule(demo: Demo) -> None:
    """Verify an every-minute schedule whose daemon was down (14 slots missed in two outages,
    then one on time) shows its count in the table and its ten latest missed slots, newest
    first in local time, under "Missed slots"; a schedule that missed nothing is not listed."""
    from outreach_core.services import schedules as scheduler

    noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    every_minute = scheduler.make_cadence("minutes", interval=1)
    for tz in ("America/New_York", "UTC"):
        scheduler.save_schedule(
            demo.ws,
            scheduler.ScheduleInput(
                workflow_id=demo.workflow.id, cadence=every_minute, timezone=tz
            ),
            actor="test",
            now=noon - timedelta(seconds=30),
        )
    with demo.ws.db.begin() as conn:  # only schedule 1 was left without a daemon
        schedules.update_schedule(conn, 2, next_run_at=noon + timedelta(hours=1))
    for minutes in (4, 15):  # 12:00-12:03 missed, then 12:05-12:14
        scheduler.claim_due_schedules(demo.ws, now=noon + timedelta(minutes=minutes, seconds=5))

    at = start()
    rows = at.dataframe[0].value.to_dict("records")
    assert [(r["ID"], r["Missed slots"]) for r in rows] == [(1, 14), (2, 0)]
    assert "Missed slots" in [h.value for h in at.subheader]
    [heading] = [m.value for m in at.markdown if m.value.startswith("**Schedule")]
    assert heading == f"**Schedule 1** ({demo.workflow.name}): 14 missed slot(s), the latest 10:"
    listed = at.dataframe[1].value.to_dict("records")
    assert [r["Slot"] for r in listed] == [
        f"2026-12-04 07:{minute:02d} EST (Fri)" for minute in range(14, 4, -1)
    ]
    assert {(r["Policy"], r["Action"]) for r in listed} == {("skip", "skipped")}
    assert listed[0]["Recorded"] == "2026-12-04 07:15 EST (Fri)"
    assert len(at.dataframe) == 2  # no list for schedule 2


def test_page_without_workflows_says_what_to_do(data_dir: Path) -> None:
    """Verify an empty workspace gets an empty state instead of a form."""
    at = start()
    assert any("Create a workflow first" in i.value for i in at.info)
    assert not at.button


@pytest.mark.browser
def test_browser_schedules_page_screenshot(
    tmp_path_factory: pytest.TempPathFactory, chromium_path: str, dns_server: DnsServer
) -> None:
    """Verify the page in Chromium with three schedules (one with missed slots), and save
    schedules.png."""
    from outreach_core.services import schedules as scheduler

    data = tmp_path_factory.mktemp("schedules-browser") / "data"
    ws = open_test_workspace(data)
    try:
        workflow = load_demo(ws)
        assert workflow is not None
        for cadence, tz, window in [
            (scheduler.make_cadence("weekdays", at="09:00"), "Europe/London", "09:00-17:00"),
            (
                scheduler.make_cadence("monthly", at="08:30", day_of_month=31),
                "America/New_York",
                None,
            ),
        ]:
            scheduler.save_schedule(
                ws,
                scheduler.ScheduleInput(
                    workflow_id=workflow.id, cadence=cadence, timezone=tz, send_window=window
                ),
                actor="test",
            )
        # an every-minute schedule whose daemon was down for four minutes: missed slots shown
        scheduler.save_schedule(
            ws,
            scheduler.ScheduleInput(
                workflow_id=workflow.id, cadence=scheduler.make_cadence("minutes", interval=1)
            ),
            actor="test",
            now=utcnow() - timedelta(minutes=4),
        )
        assert scheduler.claim_due_schedules(ws)[0].missed is not None
        services.list_workflows(ws)
    finally:
        ws.close()
    with (
        serve_app(data, nameserver=dns_server.nameserver) as url,
        launched_chromium(chromium_path) as chromium,
        opened_page(chromium, viewport={"width": 1600, "height": 1300}) as page,
    ):
        page.goto(f"{url}/schedules")
        page.wait_for_selector(READY)
        page.get_by_role("heading", name="Schedules", exact=True).wait_for()
        page.get_by_text("Next five runs").wait_for()
        page.get_by_role("heading", name="Missed slots").wait_for()
        page.locator('[data-testid="stDataFrame"]').first.wait_for()
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0"
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "schedules.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
