"""The states of runs and deliveries, their legal transitions, and why a row is skipped.

The transition tables are the single source of truth: the store refuses any status update
that is not in them, and a unit test walks their full cross product.
"""

from __future__ import annotations

from enum import StrEnum

from outreach_core.errors import IllegalTransition


class RunStatus(StrEnum):
    """Where a run is in its lifecycle."""

    #: waiting for an executor to claim it
    QUEUED = "QUEUED"
    #: an executor is freezing the audience into delivery rows
    INITIALIZING = "INITIALIZING"
    #: deliveries are being sent
    SENDING = "SENDING"
    #: stopped on purpose (user or engine error); resumable
    PAUSED = "PAUSED"
    #: every delivery has an outcome
    COMPLETED = "COMPLETED"
    #: could not go on (audience or template unusable)
    FAILED = "FAILED"
    #: stopped by the user; its unsent deliveries become `cancelled`
    CANCELLED = "CANCELLED"


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.INITIALIZING, RunStatus.CANCELLED}),
    RunStatus.INITIALIZING: frozenset({RunStatus.SENDING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SENDING: frozenset(
        {RunStatus.COMPLETED, RunStatus.PAUSED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.SENDING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}

#: "retry deferred and unknown" is the one way back from the end: it re-queues a COMPLETED or
#: PAUSED run so an executor sends the rows it put back to pending. Kept apart from
#: RUN_TRANSITIONS on purpose, so COMPLETED stays final for the executor, reports and
#: `finished_at`, and only `check_run_transition(..., reopen=True)` accepts these moves.
RUN_REOPEN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.COMPLETED: frozenset({RunStatus.QUEUED}),
    RunStatus.PAUSED: frozenset({RunStatus.QUEUED}),
}

#: states in which an executor owns the run and heartbeats it
ACTIVE_RUN_STATES = frozenset({RunStatus.INITIALIZING, RunStatus.SENDING})
FINAL_RUN_STATES = frozenset(s for s, targets in RUN_TRANSITIONS.items() if not targets)


class DeliveryStatus(StrEnum):
    """The outcome of one recipient in one run."""

    #: frozen, not yet attempted
    PENDING = "pending"
    #: claimed by an executor, outcome not yet recorded
    SENDING = "sending"
    #: accepted by the engine
    SENT = "sent"
    #: refused for good
    FAILED = "failed"
    #: transient errors: retried on a schedule while `next_attempt_at` is set (then `failed`
    #: as expired), else waiting for a person's "retry deferred", which re-queues it
    DEFERRED = "deferred"
    #: never attempted, with a reason (invalid, duplicate, suppressed, render error)
    SKIPPED = "skipped"
    #: may or may not have gone out (crash or ambiguous error); not resent unless asked
    UNKNOWN = "unknown"
    #: never attempted because a user cancelled the run; the reason names who and when
    CANCELLED = "cancelled"


DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset(
        {DeliveryStatus.SENDING, DeliveryStatus.SKIPPED, DeliveryStatus.CANCELLED}
    ),
    DeliveryStatus.SENDING: frozenset(
        {
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
            DeliveryStatus.DEFERRED,
            DeliveryStatus.UNKNOWN,
            DeliveryStatus.SKIPPED,
            # claimed but never started, released after the run was cancelled
            DeliveryStatus.CANCELLED,
        }
    ),
    DeliveryStatus.DEFERRED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.UNKNOWN: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.SENT: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
    DeliveryStatus.SKIPPED: frozenset(),
    DeliveryStatus.CANCELLED: frozenset(),
}


class SkipReason(StrEnum):
    """Why a row of the audience was not attempted."""

    #: no usable address, including an empty cell ("invalid_syntax: no email")
    INVALID_SYNTAX = "invalid_syntax"
    #: the domain has neither MX nor A/AAAA
    NO_MX = "no_mx"
    #: the domain publishes a null MX (RFC 7505)
    NULL_MX = "null_mx"
    #: the domain does not exist
    NO_DOMAIN = "no_domain"
    #: every MX host is NXDOMAIN or has no A/AAAA record
    MX_UNRESOLVABLE = "mx_unresolvable"
    #: the mail hosts have only private, loopback, link-local or reserved addresses (sent,
    #: flagged, when the settings say this is a test environment)
    PRIVATE_ADDRESS = "private_address"
    #: the DNS lookup failed or timed out: unknown, not invalid. A run keeps such a row pending
    #: with this reason and looks again (`dns_waits`); it is skipped only when the run's
    #: `on_dns_unanswered` says so once `dns_wait_hours` have passed
    DNS_ERROR = "dns_error"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    RENDER_ERROR = "render_error"
    #: another run of the workflow sent to the address within its dedupe window (or is
    #: sending it now): skipped when the run claims the row (`dedupe`)
    SENT_RECENTLY = "sent_recently"


def check_run_transition(current: RunStatus, target: RunStatus, *, reopen: bool = False) -> None:
    """Raise IllegalTransition unless `current -> target` is in RUN_TRANSITIONS (or, with
    `reopen`, the retry action's RUN_REOPEN_TRANSITIONS)."""
    targets = RUN_TRANSITIONS[current]
    if reopen:
        targets = targets | RUN_REOPEN_TRANSITIONS.get(current, frozenset())
    if target not in targets:
        allowed = ", ".join(sorted(targets)) or "nothing (final state)"
        raise IllegalTransition(f"a run cannot go from {current} to {target}; allowed: {allowed}")


def check_delivery_transition(current: DeliveryStatus, target: DeliveryStatus) -> None:
    """Raise IllegalTransition unless `current -> target` is in DELIVERY_TRANSITIONS."""
    if target not in DELIVERY_TRANSITIONS[current]:
        allowed = ", ".join(sorted(DELIVERY_TRANSITIONS[current])) or "nothing (final state)"
        raise IllegalTransition(
            f"a delivery cannot go from {current} to {target}; allowed: {allowed}"
        )


class RunAction(StrEnum):
    """What a user may ask of a run from a page or the CLI."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    #: put deferred (and, when asked, unknown) deliveries back to pending and re-queue the run
    RETRY = "retry"


#: the statuses in which each action is allowed: the services refuse the others, the pages
#: disable their buttons. A resume continues a PAUSED run; an executor that adopts an
#: interrupted run (its holder gone) does so on its own, not as a user's action.
RUN_ACTIONS: dict[RunAction, frozenset[RunStatus]] = {
    RunAction.PAUSE: frozenset({RunStatus.SENDING}),
    RunAction.RESUME: frozenset({RunStatus.PAUSED}),
    RunAction.CANCEL: frozenset(
        {RunStatus.QUEUED, RunStatus.INITIALIZING, RunStatus.SENDING, RunStatus.PAUSED}
    ),
    RunAction.RETRY: frozenset({RunStatus.COMPLETED, RunStatus.PAUSED}),
}


def allowed_actions(status: RunStatus) -> frozenset[RunAction]:
    """The actions a run in this status accepts."""
    return frozenset(action for action, statuses in RUN_ACTIONS.items() if status in statuses)


def statuses_allowing(action: RunAction) -> tuple[RunStatus, ...]:
    """The statuses in which `action` is allowed, in lifecycle order (for messages)."""
    return tuple(status for status in RunStatus if status in RUN_ACTIONS[action])


class StopReason(StrEnum):
    """Why an executor's batch loop stopped; it decides how the run ends."""

    #: nothing is pending or held by another worker: the run is complete
    DONE = "done"
    #: a stop was asked for (SIGTERM/SIGINT) or the run was lost to another executor
    STOP = "stop"
    #: the run's time limit is up: its pending rows are skipped
    TIME = "time"
    #: the run is no longer SENDING or no longer this worker's (paused or cancelled by a user)
    STATUS = "status"
    #: outside the run's send window: paused until it opens
    WINDOW = "window"
    #: no engine is left in the rotation: paused
    ENGINE = "engine"
    #: every engine's daily quota is used: paused until the next UTC midnight
    QUOTA = "quota"
    #: auto-pause: too many recent sends failed, or an engine's complaint brake is on
    AUTO = "auto"
    #: nothing to send now, but deferred deliveries wait for their scheduled retry: the run
    #: stays SENDING, let go until the earliest one is due (a daemon's pass takes it again)
    WAIT = "wait"
    #: only rows whose domain DNS did not answer are left: paused, looked up again shortly
    DNS = "dns"


class DnsWaitPolicy(StrEnum):
    """What a run does with rows whose domain DNS still has not answered after its
    `dns_wait_hours` (a failed lookup is unknown, never a verdict on the address)."""

    #: keep them pending and keep looking (the run stays paused between lookups)
    WAIT = "wait"
    #: send them without a DNS answer (the engine's own server resolves the domain)
    SEND = "send"
    #: skip them as `dns_error`, naming how long DNS was asked
    SKIP = "skip"
