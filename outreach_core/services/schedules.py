"""Use cases of schedules, triggers and the daemons' registry: one transaction each.

Called by the Schedules page, Home, the HTTP API and the daemon (which claims due schedules
and registers and heartbeats itself here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError

from outreach_core.adapters.store import audit, daemons, runs, schedules, workflows
from outreach_core.adapters.store.daemons import Daemon
from outreach_core.adapters.store.schedules import Claimed
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.cadence import (
    Cadence,
    CadenceKind,
    MissedSlotPolicy,
    MissedSlots,
    Schedule,
    describe,
    next_run_after,
    next_runs,
    parse_window,
    zone,
)
from outreach_core.domain.clock import utcnow
from outreach_core.domain.states import RunStatus
from outreach_core.errors import InputError
from outreach_core.services.runs import queue_run

log = logging.getLogger("outreach.schedules")

#: at most this many slots are listed in one `schedule.missed` log line (the audit has them all)
LOG_SLOTS_MAX = 100
#: the missed slots the Schedules page lists per schedule
PAGE_MISSED_MAX = 10

#: how often a daemon writes its heartbeat
DAEMON_HEARTBEAT_S = 5.0
#: a daemon whose heartbeat is older than this is reported dead (`--health` fails)
DAEMON_FRESH_FOR = timedelta(seconds=30)
#: a daemon silent this long is removed from the daemons table by the others
DAEMON_PRUNE_AFTER = DAEMON_FRESH_FOR * 20
#: the trigger of a run started from the Schedules page or the HTTP API
MANUAL_TRIGGER = "manual"
API_TRIGGER = "api"


class ScheduleInput(BaseModel):
    """What the Schedules page (or a caller) gives to create or change a schedule."""

    workflow_id: int
    cadence: Cadence
    timezone: str = "UTC"
    enabled: bool = True
    missed_policy: MissedSlotPolicy = MissedSlotPolicy.SKIP
    late_window_hours: float = Field(default=0.0, ge=0, le=24 * 31)
    #: local `HH:MM-HH:MM`, or None to send at any hour
    send_window: str | None = None


def _columns(data: ScheduleInput, *, now: datetime) -> dict[str, object]:
    zone(data.timezone)  # InputError naming the zone
    window = parse_window(data.send_window) if data.send_window else None
    if data.missed_policy is MissedSlotPolicy.RUN_LATE and data.late_window_hours <= 0:
        raise InputError("run-late needs a late window above 0 hours (e.g. 6)")
    return {
        "workflow_id": data.workflow_id,
        "cadence": data.cadence.model_dump(mode="json"),
        "timezone": data.timezone,
        "enabled": data.enabled,
        "missed_policy": data.missed_policy,
        "late_window_hours": data.late_window_hours,
        "window_start": f"{window.start:%H:%M}" if window else None,
        "window_end": f"{window.end:%H:%M}" if window else None,
        "next_run_at": next_run_after(data.cadence, now, data.timezone),
    }


def save_schedule(
    ws: Workspace,
    data: ScheduleInput,
    *,
    actor: str,
    schedule_id: int | None = None,
    now: datetime | None = None,
) -> Schedule:
    """Create (or, with `schedule_id`, replace) a schedule; next_run_at is the next slot."""
    now = now or utcnow()
    values = _columns(data, now=now)
    with ws.db.begin() as conn:
        workflows.get_workflow(conn, data.workflow_id)  # NotFound names it
        if schedule_id is None:
            schedule_id = schedules.insert_schedule(conn, now=now, **values)
            action = "schedule.create"
        else:
            schedules.update_schedule(conn, schedule_id, **values)
            action = "schedule.update"
        audit.record(
            conn,
            actor=actor,
            action=action,
            subject=f"schedule {schedule_id}",
            now=now,
            detail={"cadence": describe(data.cadence), "timezone": data.timezone},
        )
        return schedules.get_schedule(conn, schedule_id)


def set_enabled(
    ws: Workspace, schedule_id: int, enabled: bool, *, actor: str, now: datetime | None = None
) -> Schedule:
    """Enable or disable; enabling starts from the next future slot (nothing missed is run)."""
    now = now or utcnow()
    with ws.db.begin() as conn:
        current = schedules.get_schedule(conn, schedule_id)
        values: dict[str, object] = {"enabled": enabled}
        if enabled and not current.enabled:
            values["next_run_at"] = next_run_after(current.cadence, now, current.timezone)
        schedules.update_schedule(conn, schedule_id, **values)
        audit.record(
            conn,
            actor=actor,
            action="schedule.enable" if enabled else "schedule.disable",
            subject=f"schedule {schedule_id}",
            now=now,
        )
        return schedules.get_schedule(conn, schedule_id)


def run_schedule_now(ws: Workspace, schedule_id: int, *, actor: str) -> int:
    """Queue a run of the schedule's workflow now (its send window applies); the schedule's
    own next run is unchanged."""
    now = utcnow()
    with ws.db.begin() as conn:
        schedule = schedules.get_schedule(conn, schedule_id)
        run_id = schedules.insert_scheduled_run(conn, schedule, now=now, trigger=MANUAL_TRIGGER)
        audit.record(conn, actor=actor, action="schedule.run_now", subject=f"run {run_id}", now=now)
        return run_id


def trigger_workflow(
    ws: Workspace, *, workflow_id: int | None = None, workflow_key: str | None = None, actor: str
) -> int:
    """Queue a run of a workflow named by id or key; returns the run id.

    Triggering again inside the workflow's dedupe window queues a run that sends nothing new:
    recipients already sent to are skipped as `sent_recently`.
    """
    if (workflow_id is None) == (workflow_key is None):
        raise InputError("name the workflow by workflow_id or by workflow_key (one of them)")
    if workflow_id is None:
        with ws.db.connect() as conn:
            workflow_id = workflows.get_workflow_by_key(conn, workflow_key or "").id
    return queue_run(ws, workflow_id, trigger=API_TRIGGER, actor=actor)


def claim_due_schedules(ws: Workspace, *, now: datetime | None = None) -> list[Claimed]:
    """Claim every due schedule in one transaction: each one's run queued (or its slot noted
    as missed) and its next_run_at advanced. Daemons racing for a schedule: one wins."""
    with ws.db.begin() as conn:
        claimed = schedules.claim_due_schedules(conn, now=now or utcnow())
    # logged after the commit: a claim that rolled back recorded nothing, and says nothing
    for item in claimed:
        if item.missed is not None:
            log.info(missed_line(item.schedule_id, item.missed))
    return claimed


def missed_line(schedule_id: int, missed: MissedSlots) -> str:
    """`event=schedule.missed schedule=ID slots=ISO,ISO count=N policy=P action=A`."""
    times = [f"{slot:%Y-%m-%dT%H:%M:%SZ}" for slot in missed.slots[:LOG_SLOTS_MAX]]
    if len(missed.slots) > LOG_SLOTS_MAX:  # a long outage of a frequent cadence
        times.append(f"+{len(missed.slots) - LOG_SLOTS_MAX}_more")
    return (
        f"event=schedule.missed schedule={schedule_id} slots={','.join(times)} "
        f"count={len(missed.slots)} policy={missed.policy} action={missed.action}"
    )


@dataclass(frozen=True)
class MissedSlotView:
    """One missed slot as the Schedules page lists it."""

    slot: str
    policy: str
    action: str
    recorded: str


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as the Schedules page lists it."""

    schedule: Schedule
    workflow_name: str
    cadence_text: str
    #: the next five slots as local wall-clock strings
    upcoming: list[str]
    last_run_status: RunStatus | None
    #: how many missed slots the audit holds for the schedule
    missed_count: int = 0
    #: its latest missed slots (PAGE_MISSED_MAX), newest first, as local text with the action
    missed: list[MissedSlotView] = field(default_factory=list)


def local_text(at: datetime, tz: str) -> str:
    """`2026-12-07 09:00 EST (Mon)`: a UTC instant as the schedule's local time."""
    return at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z (%a)")


def upcoming_runs(cadence: Cadence, tz: str, *, now: datetime | None = None) -> list[str]:
    """The next five slots in local time (the page shows them while a cadence is edited)."""
    return [local_text(s, tz) for s in next_runs(cadence, now or utcnow(), zone(tz).key)]


def list_schedules(ws: Workspace, *, now: datetime | None = None) -> list[ScheduleView]:
    """Every schedule with its workflow, its next five local run times and its last run."""
    now = now or utcnow()
    with ws.db.connect() as conn:
        every = schedules.list_schedules(conn)
        names = workflows.workflow_names(conn, [s.workflow_id for s in every])
        last = {s.id: runs.get_run(conn, s.last_run_id).status for s in every if s.last_run_id}
        counts = schedules.missed_slot_counts(conn)
        recent = {
            s.id: schedules.latest_missed(conn, s.id, limit=PAGE_MISSED_MAX)
            for s in every
            if counts.get(s.id)
        }
    views = []
    for item in every:
        start = max(now, item.next_run_at or now)
        slots = next_runs(item.cadence, start - timedelta(microseconds=1), item.timezone)
        views.append(
            ScheduleView(
                schedule=item,
                workflow_name=names.get(item.workflow_id, "?"),
                cadence_text=describe(item.cadence),
                upcoming=[local_text(s, item.timezone) for s in slots] if item.enabled else [],
                last_run_status=last.get(item.id),
                missed_count=counts.get(item.id, 0),
                missed=[_missed_view(e, item.timezone) for e in recent.get(item.id, [])],
            )
        )
    return views


def _missed_view(entry: dict[str, object], tz: str) -> MissedSlotView:
    detail = entry["detail"]
    assert isinstance(detail, dict)
    slot = datetime.strptime(str(detail["slot"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    at = entry["at"]
    assert isinstance(at, datetime)
    return MissedSlotView(
        slot=local_text(slot, tz),
        policy=str(detail.get("policy", "")),
        action=str(detail.get("action", "")),
        recorded=local_text(at, tz),
    )


@dataclass(frozen=True)
class DaemonStatus:
    """Whether any daemon is alive, and every registered one."""

    alive: list[Daemon]
    dead: list[Daemon]

    @property
    def healthy(self) -> bool:
        return bool(self.alive)

    def __str__(self) -> str:
        if not self.alive:
            return "No scheduler daemon is running: start `python scheduler_daemon.py`"
        names = ", ".join(f"{d.host} pid {d.pid}" for d in self.alive)
        return f"Scheduler: {len(self.alive)} daemon(s) alive ({names})"


def daemon_status(ws: Workspace, *, now: datetime | None = None) -> DaemonStatus:
    """The daemons, split by a fresh heartbeat."""
    now = now or utcnow()
    with ws.db.connect() as conn:
        every = daemons.list_daemons(conn)
    alive = [d for d in every if d.is_alive(now=now, stale_after=DAEMON_FRESH_FOR)]
    return DaemonStatus(alive=alive, dead=[d for d in every if d not in alive])


def register_daemon(ws: Workspace, daemon_id: str, *, http: str | None = None) -> None:
    """Enter a daemon (and the HTTP address it serves, if any) with a fresh heartbeat."""
    with ws.db.begin() as conn:
        daemons.register(conn, daemon_id, now=utcnow(), http=http)


def beat_daemon(ws: Workspace, daemon_id: str, *, http: str | None = None) -> None:
    """Freshen the daemon's heartbeat (registering it again if others pruned it) and remove
    the daemons silent for DAEMON_PRUNE_AFTER."""
    now = utcnow()
    with ws.db.begin() as conn:
        if not daemons.heartbeat(conn, daemon_id, now=now):
            daemons.register(conn, daemon_id, now=now, http=http)
        daemons.prune(conn, heartbeat_before=now - DAEMON_PRUNE_AFTER)


def unregister_daemon(ws: Workspace, daemon_id: str) -> None:
    """Remove a stopping daemon from the registry."""
    with ws.db.begin() as conn:
        daemons.unregister(conn, daemon_id)


def make_cadence(
    kind: str,
    *,
    interval: int | None = None,
    at: time | str | None = None,
    days: list[int] | None = None,
    day_of_month: int | None = None,
) -> Cadence:
    """A cadence from form fields; only the fields its kind uses are kept. A missing or bad
    field is an InputError naming it."""
    chosen = CadenceKind(kind)
    fields: dict[str, object] = {"kind": chosen}
    if chosen in (CadenceKind.MINUTES, CadenceKind.HOURS):
        fields["interval"] = interval
    else:
        fields["at"] = at
    if chosen is CadenceKind.WEEKLY:
        fields["days"] = tuple(days or ())
    if chosen is CadenceKind.MONTHLY:
        fields["day_of_month"] = day_of_month
    try:
        return Cadence.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "cadence"
        raise InputError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


def schedule_rows(views: list[ScheduleView]) -> list[dict[str, object]]:
    """One row per schedule for the page's table."""
    return [
        {
            "ID": v.schedule.id,
            "Workflow": v.workflow_name,
            "Cadence": v.cadence_text,
            "Zone": v.schedule.timezone,
            "Window": str(v.schedule.window) if v.schedule.window else "any time",
            "Missed": (
                f"late within {v.schedule.late_window_hours:g} h"
                if v.schedule.missed_policy is MissedSlotPolicy.RUN_LATE
                else "skip"
            ),
            "On": v.schedule.enabled,
            "Next run": v.upcoming[0] if v.upcoming else "",
            "Last run": (
                f"run {v.schedule.last_run_id} {v.last_run_status}"
                if v.schedule.last_run_id
                else ""
            ),
            "Missed slots": v.missed_count,
            "Note": v.schedule.last_note or "",
        }
        for v in views
    ]


def missed_rows(view: ScheduleView) -> list[dict[str, str]]:
    """The schedule's latest missed slots, one row each, for the page's table."""
    return [
        {
            "Slot": m.slot,
            "Policy": m.policy.replace("_", "-"),
            "Action": m.action.replace("_", " "),
            "Recorded": m.recorded,
        }
        for m in view.missed
    ]
