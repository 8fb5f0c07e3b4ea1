"""The run report: mailed after a run ends when the REPORT_* settings are present.

State, counts (skips by reason), duration, delivery rate, top error reasons, the first 50
failed rows, and the recipients' outcomes as a CSV attachment: the first
`ATTACHED_ROWS` of them (the body says when there are more; `export` writes them all). The
outcome rows are read once, as a stream: memory holds the attachment and the counters only. Every value is escaped (HTML
in the body; spreadsheet formulas in the CSV); no secret is in it: the ledger holds none and
the engine is named by its masked URL only.
"""

from __future__ import annotations

import html
import io
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from outreach_core.adapters.csv_files import CsvRowWriter
from outreach_core.adapters.report_mail import ReportMailError, ReportSmtp, send_report
from outreach_core.adapters.settings import Settings
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import RunSummary
from outreach_core.domain.smtp_security import report_transport
from outreach_core.domain.states import DeliveryStatus
from outreach_core.services.run_summaries import (
    EXPORT_COLUMNS,
    iter_run_outcome_rows,
    run_summary,
)

log = logging.getLogger("outreach.report")

FIRST_FAILED = 50
TOP_REASONS = 10
#: recipients the attached CSV holds at most (a few MB); `export` writes every one
ATTACHED_ROWS = 50_000


def _kind(reason: str) -> str:
    return reason.split(":", 1)[0] if reason else ""


@dataclass(frozen=True)
class Report:
    subject: str
    html: str
    text: str
    csv: str


def build_report(
    summary: RunSummary, rows: Iterable[list[object]], *, attached_rows: int = ATTACHED_ROWS
) -> Report:
    """Pure: the report for a run from its summary and its outcome rows (EXPORT_COLUMNS), read
    once in order; the CSV holds the first `attached_rows` of them."""
    run, counts = summary.run, summary.counts
    status_at, reason_at = EXPORT_COLUMNS.index("status"), EXPORT_COLUMNS.index("reason")
    skipped_by: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    problems: list[list[object]] = []  # the first FIRST_FAILED only
    attachment = io.StringIO(newline="")
    writer = CsvRowWriter(attachment, lineterminator="\r\n")
    writer.write(EXPORT_COLUMNS)
    total = 0
    for r in rows:
        total += 1
        if total <= attached_rows:
            writer.write(r)
        if r[status_at] == DeliveryStatus.SKIPPED:
            skipped_by[_kind(str(r[reason_at]))] += 1
        elif r[status_at] in ("failed", "deferred", "unknown"):
            reasons[str(r[reason_at])[:200]] += 1
            if len(problems) < FIRST_FAILED:
                problems.append(r)
    top = reasons.most_common(TOP_REASONS)
    cut = (
        f"The attached CSV holds the first {attached_rows} of {total} recipients; "
        f"`python -m outreach_core export {run.id} --out FILE` writes every one."
        if total > attached_rows
        else ""
    )
    duration = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at and run.started_at
        else None
    )
    attempted = counts.sent + counts.failed + counts.deferred + counts.unknown
    rate = f"{counts.sent / attempted:.1%}" if attempted else "n/a"
    lines = [
        f"Run {run.id} of {summary.workflow_name}: {run.status}",
        f"Reason: {run.status_reason}" if run.status_reason else "",
        f"Counts: {counts}",
        "Skipped by reason: "
        + (", ".join(f"{k or 'none'} {v}" for k, v in skipped_by.most_common()) or "none"),
        f"Duration: {duration:.0f} s" if duration is not None else "Duration: n/a",
        f"Delivery rate (sent of attempted): {rate}",
        "Top error reasons:",
        *(f"  {n} x {reason}" for reason, n in top),
        f"First {len(problems)} failed rows:",
        *(f"  row {r[1]} {r[2]} {r[3]}: {r[reason_at]}" for r in problems),
        cut,
    ]
    text = "\n".join(line for line in lines if line != "") + "\n"
    esc = html.escape
    table = "".join(
        f"<tr><td>{esc(str(r[1]))}</td><td>{esc(str(r[2]))}</td><td>{esc(str(r[3]))}</td>"
        f"<td>{esc(str(r[reason_at]))}</td></tr>"
        for r in problems
    )
    body = (
        f"<h2>Run {run.id} of {esc(summary.workflow_name)}: {esc(str(run.status))}</h2>"
        + (f"<p>{esc(run.status_reason)}</p>" if run.status_reason else "")
        + f"<p>{esc(str(counts))}</p>"
        + "<p>Skipped by reason: "
        + esc(", ".join(f"{k or 'none'} {v}" for k, v in skipped_by.most_common()) or "none")
        + "</p>"
        + f"<p>Duration: {esc(f'{duration:.0f} s' if duration is not None else 'n/a')}; "
        f"delivery rate {esc(rate)}</p>"
        + "<h3>Top error reasons</h3><ul>"
        + "".join(f"<li>{n} &times; {esc(reason)}</li>" for reason, n in top)
        + "</ul><h3>First failed rows</h3><table><tr><th>row</th><th>email</th>"
        "<th>status</th><th>reason</th></tr>"
        + table
        + "</table>"
        + (f"<p>{esc(cut)}</p>" if cut else "")
    )
    subject = f"Outreach run {run.id} ({summary.workflow_name}): {run.status}, {counts.sent} sent"
    return Report(
        subject=subject,
        html=body,
        text=text,
        csv=attachment.getvalue(),
    )


def report_configured(settings: Settings) -> bool:
    return bool(settings.report_email_to and settings.report_smtp_host)


def mail_run_report(ws: Workspace, run_id: int) -> bool:
    """Mail the report if REPORT_* is set; otherwise log one line. True when mailed.

    It travels as REPORT_SMTP_TLS says (`report_transport`: plaintext only when asked for or
    to a loopback host). A refusal or a failure to mail is logged with what to do (host named,
    no credential) and does not touch the run.
    """
    settings = ws.settings
    if not report_configured(settings):
        log.info(
            "run %s: no run report mailed (REPORT_EMAIL_TO / REPORT_SMTP_HOST not set)", run_id
        )
        return False
    report = build_report(run_summary(ws, run_id), iter_run_outcome_rows(ws, run_id))
    sender = settings.report_email_from or "outreach@localhost"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = settings.report_email_to
    msg["Subject"] = report.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    msg.set_content(report.text)
    msg.add_alternative(report.html, subtype="html")
    msg.add_attachment(
        report.csv.encode("utf-8"), maintype="text", subtype="csv", filename=f"run-{run_id}.csv"
    )
    where = f"{settings.report_smtp_host}:{settings.report_smtp_port}"
    transport = report_transport(
        settings.report_smtp_host or "",
        settings.report_smtp_tls,
        has_user=bool(settings.report_smtp_user),
    )
    if transport.tls is None:  # refused before any connection
        log.error("run %s: the run report was not mailed: %s", run_id, transport.refusal)
        return False
    config = ReportSmtp(
        host=settings.report_smtp_host or "",
        port=settings.report_smtp_port,
        tls=transport.tls,
        user=settings.report_smtp_user,
        password=settings.report_smtp_password,
        cafile=settings.report_smtp_cafile,
        timeout=settings.report_smtp_timeout,
    )
    try:
        send_report(config, msg)
    except ReportMailError as exc:
        log.error("run %s: the run report could not be mailed via %s (%s): %s", run_id, where,
                  transport.tls, exc)  # fmt: skip
        return False
    log.info(
        "run %s: run report mailed to %s via %s (%s)",
        run_id, settings.report_email_to, where, transport.tls,
    )  # fmt: skip
    return True
