"""What a worker sends a run with: the run context, opened once per execution.

Its template version compiled, a lane per engine of the workflow (`lanes.EngineLane`, the
senders opened on the caller's exit stack), the run's own rate (shared by every worker sending
the run, like the engines' limits: `shared_limits`), its unsubscribe link makers, its parsed
send window and the clock every stage reads. Also the heartbeat that keeps the run the owner's
while it sends.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime

from outreach_core.adapters import crypto
from outreach_core.adapters.senders import Sender, open_sender
from outreach_core.adapters.store import engines, runs, shared_limits, templates, workflows
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain import cadence
from outreach_core.domain.cadence import SendWindow
from outreach_core.domain.clock import Clock, utcnow
from outreach_core.domain.models import Engine, Run, SendOptions
from outreach_core.domain.retry import RetryPolicy
from outreach_core.domain.templating import CompiledTemplate, TemplateSource
from outreach_core.domain.unsubscribe_links import MailtoLinks, UnsubscribeLinks
from outreach_core.errors import ConfigError, SendError
from outreach_core.services import compliance
from outreach_core.services.sending.handoff import HandOffs
from outreach_core.services.sending.lanes import EngineLane
from outreach_core.services.sending.shared_limits import SharedBucket
from outreach_core.services.sending.threads import Threads

log = logging.getLogger("outreach.executor")

#: how often an executor refreshes its run's heartbeat
HEARTBEAT_INTERVAL_S = 5.0


@dataclass
class RunContext:
    """One worker's means and state for sending one run."""

    ws: Workspace
    run: Run
    worker_id: str
    template: CompiledTemplate
    #: every engine of the workflow, in its order
    lanes: list[EngineLane]
    #: the run's own rate (SendOptions), shared by every worker sending the run; each engine's
    #: bucket applies on top
    bucket: SharedBucket
    unsubscribe: UnsubscribeLinks | None = None
    mailto: MailtoLinks | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: why the run stops short: auto-pause, every engine failed, or every quota used up
    stop_reason: str | None = None
    #: True per recent attempted send that did not end `sent` (for auto-pause)
    recent_failures: list[bool] = field(default_factory=list)
    #: False for a worker assisting another's run: it claims batches but never ends the run
    owner: bool = True
    #: the run's send window, parsed once per run (None: the run may send at any hour)
    window: SendWindow | None = None
    #: what time it is, for every stage of the run
    clock: Clock = utcnow
    #: when this worker last looked up the domains of rows waiting for DNS (`dns_recheck`)
    dns_checked_at: datetime | None = None
    #: a threaded follow-up's In-Reply-To, References and Re: subject, per claimed delivery
    threads: Threads = field(default_factory=Threads)
    #: where this worker's next claim looks first: the id after its last claim's rows
    claim_from: int = 0
    #: each message's hand-off to its engine, and the outcomes not yet recorded
    handoffs: HandOffs = field(init=False)

    def __post_init__(self) -> None:
        self.handoffs = HandOffs(self.ws, self.worker_id, self.clock)

    def window_open(self) -> bool:
        """Whether the run may send now (always, without a send window)."""
        return self.window is None or cadence.window_is_open(
            self.window, self.run.options.timezone, self.clock()
        )


def send_window(options: SendOptions) -> SendWindow | None:
    """The run's send window parsed, or None when it may send at any hour."""
    return cadence.parse_window(options.send_window) if options.send_window else None


def unsubscribe_links(ws: Workspace, options: SendOptions) -> UnsubscribeLinks | None:
    """The run's `unsubscribe_url` maker, when its options name a base URL."""
    if not options.unsubscribe_base_url:
        return None
    return UnsubscribeLinks(options.unsubscribe_base_url, compliance.unsubscribe_key(ws))


def mailto_links(ws: Workspace, options: SendOptions) -> MailtoLinks | None:
    """The run's List-Unsubscribe `mailto:` maker (a token per recipient in the subject, for
    `services.unsubscribe_mailbox` to check), when its options name an unsubscribe address."""
    if not options.unsubscribe_mailto:
        return None
    return MailtoLinks(options.unsubscribe_mailto, compliance.unsubscribe_key(ws))


async def heartbeat(
    ws: Workspace, run_id: int, worker_id: str, lost: asyncio.Event, *, clock: Clock = utcnow
) -> None:
    """Refresh the run's heartbeat every HEARTBEAT_INTERVAL_S; sets `lost` and returns once
    the run is no longer this worker's."""
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL_S)
        with ws.db.begin() as conn:
            if not runs.heartbeat(conn, run_id, worker_id=worker_id, now=clock()):
                log.error("run %s: lost to another executor; stopping", run_id)
                lost.set()
                return


async def open_lanes(
    ws: Workspace,
    stack: AsyncExitStack,
    engine_list: list[Engine],
    urls: dict[int, str],
    *,
    concurrency: int,
    worker_id: str,
) -> list[EngineLane]:
    """Open a sender per engine; one that cannot be opened (or whose stored URL no key
    decrypts) joins with its error (out of rotation), so the run goes on through the others.
    Each lane's concurrency leases are given back when `stack` closes."""
    lanes = []
    for position, engine in enumerate(engine_list):
        pool = min(concurrency, engine.limits.max_concurrency or concurrency)
        sender: Sender | None = None
        error = None
        try:
            sender = await stack.enter_async_context(
                open_sender(crypto.decrypt(ws.fernet, urls[engine.id]), concurrency=pool)
            )
        # a URL no key opens (the cipher read the key again already) is that engine's error:
        # the run pauses saying so rather than the worker dying with the run held
        except (SendError, ConfigError) as exc:
            error = str(exc)
            log.warning("engine %s cannot be opened: %s", engine.name, exc)
        lane = EngineLane.for_engine(engine, position, sender, db=ws.db, holder=worker_id)
        lane.error = error
        stack.push_async_callback(lane.close)
        lanes.append(lane)
    return lanes


async def open_context(
    ws: Workspace,
    stack: AsyncExitStack,
    run: Run,
    *,
    worker_id: str,
    owner: bool,
    window: SendWindow | None,
    clock: Clock = utcnow,
) -> RunContext:
    """What a worker sends a run with: its template version, a lane per engine of the
    workflow (senders opened on `stack`) and its parsed send window, for the owner of the run
    or an assisting worker."""
    with ws.db.connect() as conn:
        engine_ids = workflows.get_workflow(conn, run.workflow_id).engine_ids
        engine_list = [engines.get_engine(conn, engine_id) for engine_id in engine_ids]
        urls = {e.id: engines.get_encrypted_url(conn, e.id) for e in engine_list}
        version = templates.get_version(conn, run.template_version_id or 0)
    template = CompiledTemplate(TemplateSource(version.subject, version.html, version.text))
    lanes = await open_lanes(
        ws, stack, engine_list, urls, concurrency=run.options.concurrency, worker_id=worker_id
    )
    if run.options.rate > 0 or any(
        e.limits.rate_per_second or e.limits.per_domain_per_minute for e in engine_list
    ):
        with ws.db.begin() as conn:  # rate states of limits long unused (domains come and go)
            shared_limits.prune_states(conn)
    ctx = RunContext(
        ws=ws,
        run=run,
        worker_id=worker_id,
        template=template,
        lanes=lanes,
        bucket=SharedBucket(ws.db, f"run {run.id}", run.options.rate, run.options.burst),
        unsubscribe=unsubscribe_links(ws, run.options),
        mailto=mailto_links(ws, run.options),
        owner=owner,
        window=window,
        clock=clock,
    )
    stack.push_async_callback(ctx.handoffs.close)
    return ctx
