"""What the commands share: the exit codes (decided in one place, `exit_code`), the actor the
audit log records, and the lines that report a run or the unsubscribe findings."""

from __future__ import annotations

import sys

from outreach_core.domain.models import RunSummary
from outreach_core.domain.planning import RENDER_ABORT_PREFIX
from outreach_core.domain.states import RunStatus
from outreach_core.domain.unsubscribe_checks import UnsubscribeFinding

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2
#: who the audit log says acted
ACTOR = "cli"


def exit_code(summary: RunSummary) -> int:
    """0 when every deliverable recipient was sent; 2 when the run refused to start because
    rows do not render (on-render-error abort); else 1."""
    reason = summary.run.status_reason or ""
    if summary.run.status is RunStatus.FAILED and reason.startswith(RENDER_ABORT_PREFIX):
        return EXIT_USAGE
    if summary.run.status is RunStatus.COMPLETED and summary.counts.unsettled == 0:
        return EXIT_OK
    return EXIT_INCOMPLETE


def print_findings(findings: list[UnsubscribeFinding], *, to_stderr: bool = False) -> None:
    """One `unsubscribe warning: …` / `unsubscribe info: …` line per finding; never stops a send."""
    for finding in findings:
        print(f"unsubscribe {finding}", file=sys.stderr if to_stderr else sys.stdout)


def print_summary(summary: RunSummary) -> None:
    print(f"{summary.run}")
    print(f"summary: {summary.counts}")
