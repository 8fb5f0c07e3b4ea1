"""A run from QUEUED to its end: claim, freeze the audience, send, record.

At-most-once: a delivery is claimed (`sending`) in the database with its batch, marked handed
(`handoff`) and committed right before its message goes to the engine, and its outcome is
recorded after. If the process dies in between, the next executor marks the handed ones
`unknown` and deliberately does not resend them; the others go back to pending.

The walk of one run through the stages:

1. `workers`: a worker (`new_worker_id`) acquires the run: claims it if QUEUED, continues it
   if PAUSED, or takes it over from a holder that is gone (`take_over`), whose in-flight
   deliveries become `unknown`.
2. `freeze`: INITIALIZING -> SENDING: the DNS verdicts, a SQL audience queried afresh, and
   one delivery row per audience row (`freeze_audience`).
3. `context`: the run's template, a lane per engine (`lanes`), its token bucket, unsubscribe
   links, send window and clock; a heartbeat keeps the run the owner's.
4. `batches`: claim a batch (quota, dedupe, suppressions, engine rotation), send it
   (`deliver`: one message with its retries), record it; until a `StopReason`.
5. `run`: `finish` turns the StopReason into COMPLETED or PAUSED (or lets the run go) and the
   run report is mailed (`report`).

`run.work_once` is a daemon's pass over every run; `assisting` lets other daemons help send a
run. Every entry point takes `clock` (default `utcnow`): each stage reads the time from it.
"""

from __future__ import annotations

from outreach_core.services.sending.assisting import adopt_dead_holders_runs, assist, assist_runs
from outreach_core.services.sending.context import (
    HEARTBEAT_INTERVAL_S,
    RunContext,
    mailto_links,
    unsubscribe_links,
)
from outreach_core.services.sending.deliver import Outcome
from outreach_core.services.sending.freeze import freeze_audience
from outreach_core.services.sending.run import execute, finish, resume_due, run_to_end, work_once
from outreach_core.services.sending.workers import (
    DAEMON_STALE_AFTER,
    STALE_AFTER,
    StopSignal,
    acquire_run,
    holder_is_alive,
    new_worker_id,
    take_over,
)

__all__ = [
    "DAEMON_STALE_AFTER",
    "HEARTBEAT_INTERVAL_S",
    "STALE_AFTER",
    "Outcome",
    "RunContext",
    "StopSignal",
    "acquire_run",
    "adopt_dead_holders_runs",
    "assist",
    "assist_runs",
    "execute",
    "finish",
    "freeze_audience",
    "holder_is_alive",
    "mailto_links",
    "new_worker_id",
    "resume_due",
    "run_to_end",
    "take_over",
    "unsubscribe_links",
    "work_once",
]
