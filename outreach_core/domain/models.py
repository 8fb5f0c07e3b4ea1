"""Pydantic models at the boundaries: options, runs, deliveries, engines, templates,
audiences, workflows and what the pages read. The states they move through are in `states`."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outreach_core.domain.states import DeliveryStatus, DnsWaitPolicy, RunStatus
from outreach_core.domain.unsubscribe_links import check_unsubscribe_base_url
from outreach_core.errors import InputError


class RenderErrorPolicy(StrEnum):
    """What a run does with rows whose template does not render."""

    #: record them as skipped (render_error) and send the rest
    SKIP = "skip"
    #: send nothing: the run fails, naming the rows
    ABORT = "abort"


class EngineLimits(BaseModel):
    """What one engine allows, held whichever workflow or process sends through it.

    None means no limit of that kind. The daily quota is counted from the ledger, the other
    limits are kept in the database (`services/sending/shared_limits.py`): each holds across
    every run, process and machine sending through the engine.
    """

    model_config = ConfigDict(frozen=True)

    rate_per_second: float | None = Field(default=None, gt=0, description="messages per second")
    burst: int | None = Field(default=None, ge=1, description="messages at once after a pause")
    daily_quota: int | None = Field(default=None, ge=1, description="messages per UTC day")
    max_concurrency: int | None = Field(default=None, ge=1, le=100, description="parallel sends")
    per_domain_per_minute: int | None = Field(
        default=None, ge=1, description="messages per minute to one recipient domain"
    )


class SendOptions(BaseModel):
    """How fast a run may send: stored with the run. Its rate and burst are shared by every
    worker sending the run (kept in the database); its concurrency is per worker."""

    model_config = ConfigDict(frozen=True)

    rate: float = Field(default=10.0, ge=0, description="messages per second, 0 = unlimited")
    burst: int = Field(default=10, ge=1, description="messages allowed at once after a pause")
    concurrency: int = Field(default=4, ge=1, le=100, description="simultaneous sends")
    batch_size: int = Field(default=50, ge=1, le=10_000, description="deliveries claimed at once")
    max_attempts: int = Field(default=3, ge=1, le=10, description="quick tries before deferring")
    retry_lifetime_hours: float = Field(
        default=24.0,
        ge=0,
        le=720,
        description="retry deferred (4xx) mail on a schedule for this many hours, then fail it;"
        " 0 = no scheduled retries (deferred rows wait for a manual retry)",
    )
    dedupe_window_hours: float = Field(
        default=24.0,
        ge=0,
        description="skip recipients this workflow sent to within this many hours, 0 = off",
    )
    auto_pause_failure_rate: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="pause when more than this share of the last 50 sends failed, 0 = off",
    )
    time_limit_minutes: float | None = Field(
        default=None,
        gt=0,
        description="end the run after this long; unsent rows are skipped as time_limit",
    )
    unsubscribe_mailto: str | None = Field(
        default=None, description="address for List-Unsubscribe mailto, e.g. unsub@example.com"
    )
    skip_mx: bool = False
    on_render_error: RenderErrorPolicy = RenderErrorPolicy.SKIP
    dns_wait_hours: float = Field(
        default=24.0, gt=0, description="how long rows wait for DNS to answer about their domain"
    )
    #: what rows still unanswered after `dns_wait_hours` become
    on_dns_unanswered: DnsWaitPolicy = DnsWaitPolicy.WAIT
    retry_ambiguous_once: bool = Field(
        default=False,
        description="retry once a send that may have been delivered (timeout or drop after DATA,"
        " HTTP 5xx); risks a duplicate, and the ledger says so",
    )
    report_recipients: list[str] = Field(
        default_factory=list, description="who gets the run report, besides OUTREACH_REPORT_TO"
    )
    unsubscribe_base_url: str | None = Field(
        default=None, description="where `unsubscribe_url` points; a token per recipient is added"
    )
    send_window: str | None = Field(
        default=None,
        description="local hours to send in, HH:MM-HH:MM; outside them the run pauses until the"
        " next opening",
    )
    timezone: str = Field(default="UTC", description="IANA zone of the send window")

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_unsubscribe_base_url(value)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> SendOptions:
        """Options read back from the database. A base URL stored before the stricter check
        is dropped rather than sent: rows using `unsubscribe_url` then fail to render (never
        mailed with a broken link) until the workflow is given a valid one."""
        url = data.get("unsubscribe_base_url")
        if url is not None:
            try:
                check_unsubscribe_base_url(url)
            except ValueError:
                data = {**data, "unsubscribe_base_url": None}
        return cls.model_validate(data)


class Run(BaseModel):
    """One execution of a workflow."""

    id: int
    workflow_id: int
    status: RunStatus
    trigger: str
    options: SendOptions
    template_version_id: int | None
    engine_id: int | None
    worker_id: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_reason: str | None
    #: a PAUSED run with this set is resumed automatically once it has passed
    resume_at: datetime | None = None
    #: the workflow step it sends (1: the workflow's own message) and, for a follow-up, the
    #: run of the step before
    step: int = 1
    previous_run_id: int | None = None

    def __str__(self) -> str:
        reason = f" ({self.status_reason})" if self.status_reason else ""
        return f"run {self.id} {self.status}{reason}"


class Delivery(BaseModel):
    """One recipient of one run, with the variables it is rendered with."""

    id: int
    run_id: int
    row_number: int | None
    email: str
    email_normalized: str | None
    variables: dict[str, Any]
    status: DeliveryStatus
    reason: str | None
    attempts: int
    message_id: str | None
    updated_at: datetime
    sent_at: datetime | None
    provider_message_id: str | None = None
    error_kind: str | None = None
    #: the engine that took (or may have taken) the message; None until one did
    engine_id: int | None = None
    #: a deferred delivery's first transient failure (its lifetime counts from it), and when
    #: it is tried again on its own (None: not scheduled)
    deferred_since: datetime | None = None
    next_attempt_at: datetime | None = None
    #: when its message was last handed to the engine (None: never, or not since it was claimed)
    handed_at: datetime | None = None
    #: its run's workflow step, and for a follow-up the delivery of the step before
    step: int = 1
    previous_delivery_id: int | None = None


class RunCounts(BaseModel):
    """Deliveries of one run by status."""

    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unknown: int = 0
    cancelled: int = 0

    @property
    def unsettled(self) -> int:
        """Deliveries whose outcome is not final: failed, deferred or unknown."""
        return self.failed + self.deferred + self.unknown

    def __str__(self) -> str:
        return (
            f"{self.total} recipients: {self.sent} sent, {self.failed} failed, "
            f"{self.deferred} deferred, {self.unknown} unknown, {self.skipped} skipped, "
            + (f"{self.cancelled} cancelled, " if self.cancelled else "")
            + f"{self.pending + self.sending} pending"
        )


class Engine(BaseModel):
    """A configured way for mail to leave; `display_url` has the secret masked."""

    id: int
    name: str
    kind: str
    display_url: str
    from_email: str
    from_name: str
    limits: EngineLimits = Field(default_factory=EngineLimits)


class Template(BaseModel):
    """The current version of a template."""

    id: int
    name: str
    version_id: int
    version: int
    subject: str
    html: str | None
    text: str | None


class Audience(BaseModel):
    """An imported list of contacts."""

    id: int
    name: str
    source: str
    email_column: str
    columns: list[str]
    #: the file's own column names, same order as `columns` (None when not known)
    headers: list[str] | None = None
    row_count: int
    #: set when the audience is a saved SQL query: every run re-runs it
    sql_source_id: int | None = None


#: a workflow's key: what triggers and links name it by
WORKFLOW_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def check_workflow_key(key: str) -> str:
    """The key if it is well formed, else InputError saying what a key may hold."""
    if not WORKFLOW_KEY.match(key):
        raise InputError(
            f"workflow key {key!r}: use 1-100 lowercase letters, digits and dashes, "
            "starting with a letter or digit (e.g. weekly-digest)"
        )
    return key


class Workflow(BaseModel):
    """Audience + template + engine + options: what a run executes."""

    id: int
    name: str
    #: stable identifier for triggers (HTTP API, CLI); survives a rename
    key: str
    audience_id: int
    template_id: int
    #: the first engine of `engine_ids`
    engine_id: int
    #: every engine the workflow sends through, in order of preference
    engine_ids: list[int] = Field(default_factory=list)
    options: SendOptions


class WorkflowCatalog(BaseModel):
    """What the Workflows page lists and offers: workflows, their possible parts, last runs."""

    workflows: list[Workflow]
    audiences: list[Audience]
    templates: list[Template]
    engines: list[Engine]
    #: the newest run of each workflow that has run, by workflow id
    last_runs: dict[int, Run] = Field(default_factory=dict)


class Overview(BaseModel):
    """What Home shows: counts of each aggregate and the latest runs."""

    audiences: int
    templates: int
    engines: int
    workflows: int
    runs: int
    recent_runs: list[RunSummary]


class RunSummary(BaseModel):
    """A run with its delivery counts, for lists and reports."""

    run: Run
    workflow_name: str
    counts: RunCounts
    #: deferred deliveries waiting for a scheduled retry, and the earliest one
    retries_waiting: int = 0
    next_retry_at: datetime | None = None


Overview.model_rebuild()


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list."""

    #: the recipient asked (unsubscribe link, one-click POST, mailto)
    UNSUBSCRIBED = "unsubscribed"
    #: a provider reported a hard (permanent) bounce
    BOUNCED = "bounced"
    #: the recipient marked a message as spam (feedback loop)
    COMPLAINED = "complained"
    #: added by a user on the dashboard, the CLI or an import
    MANUAL = "manual"


class Feedback(StrEnum):
    """What a provider reported about a sent message after it left."""

    #: permanent bounce: the address is suppressed
    BOUNCED = "bounced"
    #: spam complaint: the address is suppressed and counts toward the complaint brake
    COMPLAINED = "complained"
    #: the recipient answered (read from the engine's mailbox); later steps skip them
    REPLIED = "replied"
    #: an automatic reply (vacation, out of office): not an answer
    AUTO_REPLIED = "auto_replied"
    #: a temporary bounce or delay notice: recorded, suppressed only after several
    SOFT_BOUNCED = "soft_bounced"


class Suppression(BaseModel):
    """One address on the suppression list."""

    email_normalized: str
    reason: SuppressionReason
    created_at: datetime
    source: str | None = None


class ProviderEvent(BaseModel):
    """A bounce or complaint reported by a provider, parsed from its webhook."""

    provider: str
    feedback: Feedback
    email: str
    delivery_id: int | None = None
    provider_message_id: str | None = None
    detail: str = ""
