"""Every table, declared once with SQLAlchemy Core. Migrations live in `migrations/`.

The tables of what comes back after sending (webhook events seen, engine mailboxes, the events
read from them) are declared in `feedback_tables`, the limits shared by every sending process in
`limit_tables`, on the same metadata and exported here too.
"""

from __future__ import annotations

import sqlalchemy as sa

from outreach_core.adapters.store.columns import UTCDateTime as UTCDateTime
from outreach_core.adapters.store.columns import created_column, metadata, ordered_text
from outreach_core.adapters.store.feedback_tables import delivery_events as delivery_events
from outreach_core.adapters.store.feedback_tables import mailbox_states as mailbox_states
from outreach_core.adapters.store.feedback_tables import (
    seen_webhook_events as seen_webhook_events,
)
from outreach_core.adapters.store.limit_tables import engine_leases as engine_leases
from outreach_core.adapters.store.limit_tables import rate_limit_states as rate_limit_states

audiences = sa.Table(
    "audiences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("email_column", sa.String(200), nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    # the file's own column names, same order as `columns` (None: imported before 0002)
    sa.Column("headers", sa.JSON, nullable=True),
    sa.Column("row_count", sa.Integer, nullable=False),
    created_column(),
    # set for an audience that is a saved SQL query: each run re-runs it
    sa.Column("sql_source_id", sa.Integer, sa.ForeignKey("sql_sources.id")),
)

audience_rows = sa.Table(
    "audience_rows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "audience_id",
        sa.Integer,
        sa.ForeignKey("audiences.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.UniqueConstraint("audience_id", "row_number", name="uq_audience_rows_audience_row"),
)

templates = sa.Table(
    "templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    created_column(),
)

template_versions = sa.Table(
    "template_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "template_id",
        sa.Integer,
        sa.ForeignKey("templates.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("text", sa.Text),
    created_column(),
    sa.UniqueConstraint("template_id", "version", name="uq_template_versions_template_version"),
)

engines = sa.Table(
    "engines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("url_encrypted", sa.Text, nullable=False),
    sa.Column("display_url", sa.Text, nullable=False),
    sa.Column("from_email", sa.String(320), nullable=False),
    sa.Column("from_name", sa.String(200), nullable=False),
    # EngineLimits as JSON: rate, burst, daily quota, concurrency, per-domain rate
    sa.Column("limits", sa.JSON, nullable=True),
    created_column(),
    # complaints before this no longer count toward the complaint brake (a user reviewed them)
    sa.Column("complaints_reviewed_at", UTCDateTime()),
    # an SMTP engine's own IMAP mailbox (imaps://user:pass@host/INBOX), read back for bounces,
    # complaints and replies: Fernet-encrypted like url_encrypted, and its masked form
    sa.Column("mailbox_url_encrypted", sa.Text),
    sa.Column("mailbox_display_url", sa.Text),
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # a stable identifier for triggers (HTTP API, CLI) that survives renames
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("audience_id", sa.Integer, sa.ForeignKey("audiences.id"), nullable=False),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("templates.id"), nullable=False),
    # the first engine; `workflow_engines` lists every engine the workflow rotates across
    sa.Column("engine_id", sa.Integer, sa.ForeignKey("engines.id"), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    created_column(),
)

#: a workflow's follow-up steps: step 1 is the workflow itself (its template); step N+1 goes
#: `delay_days` after step N to step N's recipients who have not replied, bounced, complained
#: or unsubscribed
workflow_steps = sa.Table(
    "workflow_steps",
    metadata,
    sa.Column(
        "workflow_id",
        sa.Integer,
        sa.ForeignKey("workflows.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # 2 to 5
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("template_id", sa.Integer, sa.ForeignKey("templates.id"), nullable=False),
    sa.Column("delay_days", sa.Integer, nullable=False),
    # continue the thread: In-Reply-To / References the previous step's message, "Re: " subject
    sa.Column("thread", sa.Boolean, nullable=False, server_default=sa.true()),
)

workflow_engines = sa.Table(
    "workflow_engines",
    metadata,
    sa.Column(
        "workflow_id",
        sa.Integer,
        sa.ForeignKey("workflows.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("engine_id", sa.Integer, sa.ForeignKey("engines.id"), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "workflow_id",
        sa.Integer,
        sa.ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("cadence", sa.JSON, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", UTCDateTime()),
    sa.Column("last_run_at", UTCDateTime()),
    created_column(),
    # MissedSlotPolicy; run_late runs the latest missed slot if within late_window_hours
    sa.Column("missed_policy", sa.String(20), nullable=False, server_default="skip"),
    sa.Column("late_window_hours", sa.Float, nullable=False, server_default="0"),
    # local HH:MM; a run still sending at window_end pauses until the next window_start
    sa.Column("window_start", sa.String(5)),
    sa.Column("window_end", sa.String(5)),
    sa.Column("last_run_id", sa.Integer),
    # what the last claim decided ("on time", "missed 3 slot(s) …", an error)
    sa.Column("last_note", sa.Text),
    sa.Index("ix_schedules_due", "enabled", "next_run_at"),
)

daemons = sa.Table(
    "daemons",
    metadata,
    # the daemon's worker id (host:pid:random), also written to runs and deliveries it claims
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    # HOST:PORT of its HTTP face, when it has one
    sa.Column("http", sa.String(200)),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workflow_id", sa.Integer, sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("template_version_id", sa.Integer, sa.ForeignKey("template_versions.id")),
    sa.Column("engine_id", sa.Integer, sa.ForeignKey("engines.id")),
    sa.Column("worker_id", sa.String(200)),
    sa.Column("heartbeat_at", UTCDateTime()),
    created_column(),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("status_reason", sa.Text),
    # a PAUSED run with this set is resumed by the daemon once the time has passed (daily quota
    # renewed, send window open); a user's pause leaves it NULL. A SENDING run with no holder
    # and this set waits for its deferred deliveries' next scheduled retry
    sa.Column("resume_at", UTCDateTime()),
    # which step of the workflow this run sends (1: the workflow's own message) and, for a
    # follow-up, the run of the step before: unique, so each step of a run is queued once
    sa.Column("step", sa.Integer, nullable=False, server_default="1"),
    sa.Column("previous_run_id", sa.Integer, sa.ForeignKey("runs.id"), unique=True),
    sa.Index("ix_runs_created_at", "created_at"),
)


deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("row_number", sa.Integer),
    sa.Column("email", ordered_text(320), nullable=False),
    # NULL for rows that were skipped before an address could be trusted (invalid, duplicate):
    # the unique key below then guards exactly the recipients that can be sent to.
    sa.Column("email_normalized", ordered_text(320)),
    sa.Column("variables", sa.JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", ordered_text()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(300)),
    sa.Column("claimed_by", sa.String(200)),
    # the provider's own id (SendGrid X-Message-Id, Mailgun id, SES MessageId)
    sa.Column("provider_message_id", sa.String(300)),
    # for failed / deferred / unknown: transient, ambiguous, permanent or engine
    sa.Column("error_kind", sa.String(20)),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    # when the executor handed the message to its engine (committed right before): after a
    # crash only the `sending` rows with it set may have gone out and become `unknown`
    sa.Column("handed_at", UTCDateTime()),
    # the engine that took (or was to take) the message: daily quotas are counted from it
    sa.Column("engine_id", sa.Integer),
    # what came back after sending (`Feedback`): bounced or complained (webhooks and the
    # engine's mailbox), replied, auto_replied or soft_bounced (the mailbox)
    sa.Column("feedback", sa.String(20)),
    sa.Column("feedback_at", UTCDateTime()),
    # the SMTP reply code or HTTP status of a refused send, when the engine gave one
    sa.Column("reply_code", sa.Integer),
    # how long the engine took to accept the message (the last try), in milliseconds
    sa.Column("latency_ms", sa.Integer),
    # the recipient's domain (of email_normalized), so Results can group by it from an index
    sa.Column("domain", sa.String(255)),
    # a deferred delivery: its first transient failure (the retry lifetime counts from it) and
    # when the executor tries it again; next_attempt_at is NULL when no retry is scheduled
    sa.Column("deferred_since", UTCDateTime()),
    sa.Column("next_attempt_at", UTCDateTime()),
    # the workflow step the delivery belongs to (its run's step), and for a follow-up the
    # delivery of the step before that it continues (threading, who has answered)
    sa.Column("step", sa.Integer, nullable=False, server_default="1"),
    sa.Column("previous_delivery_id", sa.Integer),
    sa.UniqueConstraint("run_id", "email_normalized", name="uq_deliveries_run_email"),
    # a claim reads a run's pending rows in id order: one range of this index, no sort
    sa.Index("ix_deliveries_run_status", "run_id", "status", "id"),
    sa.Index("ix_deliveries_engine_sent", "engine_id", "sent_at"),
    sa.Index("ix_deliveries_provider_message_id", "provider_message_id"),
    # Results. Each aggregate is a range scan of an index that holds every column it reads
    # and is ordered as it groups, so neither backend sorts or visits the table: counts per
    # status in a time range (KPIs, each local day), per domain and per engine; the ledger
    # newest first; the email search and a recipient's history; latency per run. The status
    # and domain indexes end with engine_id and run_id, so a workflow or engine filter is
    # checked in the index too; the address indexes hold updated_at for the search's range;
    # the reason index serves the reason filter and the loose scan listing the reason words
    # present (read backwards: each reason's newest rows first).
    sa.Index("ix_deliveries_status_updated", "status", "updated_at", "engine_id", "run_id"),
    sa.Index(
        "ix_deliveries_domain_status", "domain", "status", "updated_at", "engine_id", "run_id"
    ),
    sa.Index("ix_deliveries_reason", "reason", "updated_at", "status", "engine_id", "run_id"),
    sa.Index("ix_deliveries_engine_status", "engine_id", "status", "updated_at", "run_id"),
    sa.Index("ix_deliveries_updated_at", "updated_at"),
    sa.Index("ix_deliveries_email_normalized", "email_normalized", "updated_at"),
    sa.Index("ix_deliveries_email", "email", "updated_at"),
    sa.Index("ix_deliveries_run_latency", "run_id", "latency_ms"),
    # what came back, per local day, engine and step (by feedback_at), and the rates of the
    # deliveries sent in a window (status, updated_at): ranges of one feedback value each
    sa.Index(
        "ix_deliveries_feedback_at",
        *("feedback", "feedback_at", "status", "updated_at", "engine_id", "run_id", "step"),
    ),
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email_normalized", sa.String(320), nullable=False, unique=True),
    sa.Column("reason", sa.String(50), nullable=False),
    created_column(),
    # who or what added it: a user, "unsubscribe link", "webhook sendgrid", "import"
    sa.Column("source", sa.String(200)),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)

dns_cache = sa.Table(
    "dns_cache",
    metadata,
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("mx_host", sa.String(255), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("checked_at", UTCDateTime(), nullable=False, index=True),
)

sql_sources = sa.Table(
    "sql_sources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("url_encrypted", sa.Text, nullable=False),
    sa.Column("display_url", sa.String(500), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("row_cap", sa.Integer, nullable=False),
    sa.Column("timeout_s", sa.Float, nullable=False),
    created_column(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # what the key signs, e.g. "unsubscribe"; one key per purpose
    sa.Column("purpose", sa.String(50), nullable=False, unique=True),
    # the random key, Fernet-encrypted with the workspace's secret key (never stored plain)
    sa.Column("key_encrypted", sa.Text, nullable=False),
    created_column(),
)

#: one row (id 1): a token under the key the stored secrets are under (None until a secret is
#: stored). rotate-key locks it first and rewrites it under the new key in its transaction; a
#: process storing a secret locks it and checks its key opens it (`secrets.lock_key_check`)
secret_key_check = sa.Table(
    "secret_key_check",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("token_encrypted", sa.Text, nullable=True),
)
