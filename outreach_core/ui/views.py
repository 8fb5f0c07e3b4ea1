"""What the pages draw, computed from core models: tables, labels and the setup checklist.

Plain functions (no streamlit), so a page only reads widgets, calls a service and draws these.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy.engine import make_url

from outreach_core.adapters.settings import Settings
from outreach_core.domain.models import (
    Delivery,
    Engine,
    EngineLimits,
    Overview,
    RunSummary,
    Template,
    WorkflowCatalog,
)
from outreach_core.domain.states import RunStatus
from outreach_core.services.run_summaries import EXPORT_COLUMNS

CLI_SEND = "python -m outreach_core send contacts.csv --template DIR --engine URL"
#: the same command broken for a narrow code block (still pastes into a shell)
CLI_SEND_BLOCK = "python -m outreach_core send contacts.csv \\\n    --template DIR --engine URL"

#: display labels and widths for the ledger (the frame keeps the CSV's column names)
LEDGER_LABELS = {
    "delivery_id": ("Delivery", "small"),
    "row_number": ("Row", "small"),
    "email": ("Email", "medium"),
    "status": ("Status", "small"),
    "reason": ("Reason", "large"),
    "attempts": ("Attempts", "small"),
    "message_id": ("Message id", "small"),
    "sent_at": ("Sent at", "medium"),
    "step": ("Step", "small"),
    "feedback": ("Reply / bounce", None),
    "feedback_at": ("Reply / bounce at", "medium"),
}

RECENT_RUN_COLUMNS = ["Run", "Workflow", "State", "Created", "Sent", "Failed", "Skipped", "Total"]


def database_label(settings: Settings) -> str:
    """The database in use, for display: backend and path or host, never a password."""
    url = make_url(settings.sqlalchemy_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"{backend} · {url.database or ':memory:'}"
    host = url.host or "localhost"
    if url.port:
        host = f"{host}:{url.port}"
    return f"{backend} · {host}/{url.database or ''}"


def timezone(name: str | None) -> tzinfo:
    """The browser's time zone by IANA name, UTC when unknown."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def format_time(moment: datetime | None, tz: tzinfo = UTC) -> str:
    """`2026-11-29 12:37 UTC`; empty for None. Naive values are taken as UTC."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def recent_runs_frame(summaries: list[RunSummary], tz: tzinfo = UTC) -> pd.DataFrame:
    """One row per run; Failed counts failed, deferred and unknown deliveries."""
    rows = [
        [
            s.run.id,
            s.workflow_name,
            str(s.run.status),
            format_time(s.run.created_at, tz),
            s.counts.sent,
            s.counts.unsettled,
            s.counts.skipped,
            s.counts.total,
        ]
        for s in summaries
    ]
    return pd.DataFrame(rows, columns=RECENT_RUN_COLUMNS)


def run_label(summary: RunSummary, tz: tzinfo = UTC) -> str:
    """How a run is named in a picker: `Run 3 · Demo: spring workshop · COMPLETED · <created>`."""
    created = format_time(summary.run.created_at, tz)
    return f"Run {summary.run.id} · {summary.workflow_name} · {summary.run.status} · {created}"


def run_status_line(summary: RunSummary, tz: tzinfo = UTC) -> str:
    """Status, reason, trigger and times of one run, as one markdown line."""
    run = summary.run
    parts = [f"**{run.status}**"]
    if run.status is RunStatus.SENDING and summary.retries_waiting and summary.next_retry_at:
        # read from the ledger at each draw: newer than the reason the executor left
        parts[0] += (
            f" (waiting for {summary.retries_waiting} deferred to be retried, next attempt "
            f"{format_time(summary.next_retry_at, tz)})"
        )
    elif run.status_reason:
        parts[0] += f" ({plain(run.status_reason)})"
    parts.append(f"triggered by {run.trigger}")
    parts.append(f"created {format_time(run.created_at, tz)}")
    if run.finished_at:
        parts.append(f"finished {format_time(run.finished_at, tz)}")
    return " · ".join(parts)


WAITING_COLUMNS = ["email", "attempts", "last reply", "next attempt"]


def waiting_frame(waiting: list[Delivery], tz: tzinfo = UTC) -> pd.DataFrame:
    """Deferred deliveries waiting for their scheduled retry, the soonest first."""
    rows = [
        [d.email, d.attempts, d.reason or "", format_time(d.next_attempt_at, tz)] for d in waiting
    ]
    return pd.DataFrame(rows, columns=WAITING_COLUMNS)


def ledger_frame(rows: list[list[object]], tz: tzinfo = UTC) -> pd.DataFrame:
    """The per-recipient outcome rows (as `run_summaries.run_outcome_rows` gives them) as a table.

    Same columns as the CSV export; `sent_at` and `feedback_at` become times in `tz` (empty
    when not sent, nothing came back).
    """
    frame = pd.DataFrame(rows, columns=EXPORT_COLUMNS, dtype=object)
    frame["row_number"] = pd.to_numeric(frame["row_number"].replace("", None)).astype("Int64")
    for column in ("delivery_id", "attempts", "step"):
        frame[column] = frame[column].astype("int64")
    for column in ("email", "status", "reason", "message_id", "feedback"):
        frame[column] = frame[column].map(str).astype("string")
    for column in ("sent_at", "feedback_at"):
        moment = pd.to_datetime(frame[column].replace("", None), utc=True, format="ISO8601")
        frame[column] = moment.dt.tz_convert(tz)
    return frame


@dataclass(frozen=True)
class ChecklistItem:
    """One step of setting up Outreach: done or not, how to do it, and the page to do it on
    (`page`: its script, for `st.page_link`; `link`: the link's text)."""

    done: bool
    label: str
    hint: str
    page: str
    link: str

    @property
    def mark(self) -> str:
        return "✓" if self.done else "○"

    def markdown(self) -> str:
        """Mark and label on one line, the hint below in grey."""
        mark = f":green[{self.mark}]" if self.done else f":gray[{self.mark}]"
        return f"{mark} **{self.label}**  \n:gray[{self.hint}]"


def setup_checklist(overview: Overview) -> list[ChecklistItem]:
    """The steps a new user goes through, ticked off from what the workspace holds, each with
    the page that does it.

    The first run counts as sent when one of the recent runs has COMPLETED.
    """
    first_run_sent = any(s.run.status is RunStatus.COMPLETED for s in overview.recent_runs)
    return [
        ChecklistItem(
            overview.audiences > 0,
            "Import an audience",
            "Upload a CSV or XLSX (exports of Google Contacts, Outlook, HubSpot… are recognised).",
            "pages/audiences.py",
            "Audiences",
        ),
        ChecklistItem(
            overview.templates > 0,
            "Save a template",
            "A subject and an HTML or text body, with the audience's columns as variables.",
            "pages/templates.py",
            "Templates",
        ),
        ChecklistItem(
            overview.engines > 0,
            "Configure an engine",
            "How mail leaves: SMTP, a provider's API, or a local outbox folder to try things.",
            "pages/engines.py",
            "Engines",
        ),
        ChecklistItem(
            overview.workflows > 0,
            "Create a workflow",
            "Audience + template + engine, and how fast and when to send.",
            "pages/workflows.py",
            "Workflows",
        ),
        ChecklistItem(
            first_run_sent,
            "Send a first run",
            "Check the addresses first under Dry run, then send (the scheduler daemon sends it).",
            "pages/send.py",
            "Send",
        ),
    ]


#: the preview's own policy: nothing is fetched (no remote image, font or stylesheet: opening
#: the preview tells no server about it), inline styles and data: images are allowed
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'"
)
_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)


def sandboxed_frame(html_body: str, *, height: int = 420) -> str:
    """A page holding the rendered HTML in an `<iframe sandbox>` with no permissions: the
    preview can run no script, submit no form and reach neither the app nor its cookies; its
    Content-Security-Policy (first in the document, so the body cannot come before it) lets
    it load nothing from the network."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{PREVIEW_CSP}">'
    doctype = _DOCTYPE.match(html_body)
    cut = doctype.end() if doctype else 0
    document = html_body[:cut] + meta + html_body[cut:]
    escaped = html.escape(document, quote=True)
    return (
        f'<iframe sandbox="" srcdoc="{escaped}" title="HTML preview" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd;background:#fff"></iframe>'
    )


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=&\"'])")


def plain(text: str) -> str:
    """`text` with every character markdown (or Streamlit's `:color[…]`, `:material/…:`)
    would act on backslash-escaped, for messages that may quote contact data or user input
    and are drawn by st.error/st.warning/st.markdown: links and images stay literal text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def row_frame(variables: dict[str, object]) -> pd.DataFrame:
    """A row's values as a two-column table; an empty cell shows as (empty)."""
    return pd.DataFrame(
        [(name, "" if value is None else str(value)) for name, value in variables.items()],
        columns=["Column", "Value"],
    ).replace({"Value": {"": "(empty)"}})


def versions_frame(versions: list[Template]) -> pd.DataFrame:
    """One row per version, newest first."""
    return pd.DataFrame(
        [
            (
                v.version,
                v.subject,
                "yes" if v.html else "",
                "yes" if v.text else "derived" if v.html else "",
            )
            for v in versions
        ],
        columns=["Version", "Subject", "HTML", "Text"],
    )


WORKFLOW_COLUMNS = ["Name", "Key", "Audience", "Template", "Engines", "Last run"]


def workflows_frame(catalog: WorkflowCatalog, tz: tzinfo = UTC) -> pd.DataFrame:
    """One row per workflow; engines in their order of preference, the last run with its state."""
    audiences = {a.id: a.name for a in catalog.audiences}
    templates = {t.id: t.name for t in catalog.templates}
    engines = {e.id: e.name for e in catalog.engines}
    rows = []
    for w in catalog.workflows:
        last = catalog.last_runs.get(w.id)
        rows.append(
            [
                w.name,
                w.key,
                audiences.get(w.audience_id, f"audience {w.audience_id}"),
                templates.get(w.template_id, f"template {w.template_id}"),
                " → ".join(engines.get(i, f"engine {i}") for i in w.engine_ids),
                f"Run {last.id} · {last.status} · {format_time(last.created_at, tz)}"
                if last
                else "never",
            ]
        )
    return pd.DataFrame(rows, columns=WORKFLOW_COLUMNS)


def limits_summary(limits: EngineLimits) -> str:
    """`2.5/s, burst 5, 250/day, 4 at once, 10/min per domain`, or `no limits`."""
    parts = []
    if limits.rate_per_second is not None:
        parts.append(f"{limits.rate_per_second:g}/s")
    if limits.burst is not None:
        parts.append(f"burst {limits.burst}")
    if limits.daily_quota is not None:
        parts.append(f"{limits.daily_quota}/day")
    if limits.max_concurrency is not None:
        parts.append(f"{limits.max_concurrency} at once")
    if limits.per_domain_per_minute is not None:
        parts.append(f"{limits.per_domain_per_minute}/min per domain")
    return ", ".join(parts) or "no limits"


def engine_label(engine: Engine) -> str:
    """`Relay (smtp · 250/day)`: how an engine is named in pickers."""
    return f"{engine.name} ({engine.kind} · {limits_summary(engine.limits)})"
