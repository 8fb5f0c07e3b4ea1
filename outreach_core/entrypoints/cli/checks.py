"""The checks that send nothing: `validate` a file, `dry-run` a workflow, `send --dry-run`.

All three run the services' pre-flight (`services.preflight`); this module only prints it.
"""

from __future__ import annotations

import argparse
import sys

from outreach_core import services
from outreach_core.adapters.contact_stream import ReadProgress
from outreach_core.adapters.csv_files import csv_part_file
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import SplitMode
from outreach_core.domain.clock import utcnow
from outreach_core.domain.models import RenderErrorPolicy
from outreach_core.domain.planning import render_abort_reason
from outreach_core.domain.states import DeliveryStatus
from outreach_core.domain.template_checks import content_warnings
from outreach_core.domain.template_tools import SUBJECT_ROWS, rendered_subjects
from outreach_core.domain.unsubscribe_checks import UnsubscribeFinding
from outreach_core.entrypoints.cli.common import EXIT_OK, EXIT_USAGE, print_findings
from outreach_core.services import file_validation, preflight
from outreach_core.services.file_sends import FileSend


def print_dry_run(
    send: FileSend,
    dry_run: preflight.DryRun,
    policy: RenderErrorPolicy,
    *,
    findings: list[UnsubscribeFinding],
) -> int:
    """`send --dry-run`: the summary, the warnings and each row that would not be sent (or
    would wait for DNS).

    Exits 2 when a send with the same options would abort on rows that do not render.
    """
    plan, template = dry_run.plan, send.template
    sendable = sum(p.status is DeliveryStatus.PENDING and p.reason is None for p in plan)
    # pending with a reason: DNS did not answer; a send keeps the row and looks again
    waiting = sum(p.status is DeliveryStatus.PENDING and p.reason is not None for p in plan)
    print(
        f"dry run: {len(plan)} rows, {sendable} would be sent, "
        + (f"{waiting} would wait for DNS, " if waiting else "")
        + f"{len(plan) - sendable - waiting} would not"
    )
    columns = sorted(template.column_variables)
    print(f"variables: {', '.join(columns) or '(none)'}")
    missing = template.missing_columns(send.parsed.columns)
    if missing:
        print(f"missing columns: {', '.join(missing)} (every row without them fails to render)")
    # the subject's length as the first rows render it, as the Templates page measures it
    subjects = rendered_subjects(
        template.source,
        list(enumerate(send.parsed.rows[:SUBJECT_ROWS], start=1)),
        email_column=send.parsed.email_column,
        sender=send.sender,
        run_date=utcnow(),
    )
    for warning in content_warnings(template.source, rendered_subjects=subjects):
        print(f"warning: {warning}")
    print_findings(findings)
    abort = render_abort_reason(plan, policy)
    if abort:
        print("on-render-error abort: a send would not start; the rows below do not render")
    for p in plan:
        if p.status is not DeliveryStatus.PENDING or p.reason:
            print(f"row {p.row_number}\t{p.reason_word}\t{p.email or '-'}\t{p.reason}")
    return EXIT_USAGE if abort else EXIT_OK


class ProgressLine:
    """`checked N/M` on stderr, rewritten in place, for lists long enough to wait for."""

    def __call__(self, done: int, total: int) -> None:
        if total >= 5_000 and sys.stderr.isatty():
            end = "\n" if done >= total else ""
            print(f"\rchecked {done}/{total}", end=end, file=sys.stderr, flush=True)


def cmd_validate(ws: Workspace, args: argparse.Namespace) -> int:
    """The file read twice in chunks (`file_validation`): memory does not grow with its rows."""
    check = file_validation.FileCheck(
        args.input,
        email_column=args.email_column,
        sheet=args.sheet,
        split=SplitMode(args.multi_address),
        skip_mx=args.skip_mx,
    )
    summary = file_validation.validate_to_csv(ws, check, args.out, progress=ReadingLine())
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    counts = " ".join(f"{k}={v}" for k, v in summary.counts.by_status.items() if v)
    print(f"{summary.rows} rows: {counts or 'none'}")
    print(f"wrote {args.out}")
    return EXIT_OK


class ReadingLine:
    """`read N rows (x%)` on stderr, rewritten in place, on a terminal only."""

    def __call__(self, progress: ReadProgress) -> None:
        if sys.stderr.isatty():
            print(f"\rread {progress.line()}", end="", file=sys.stderr, flush=True)


def cmd_dry_run(ws: Workspace, args: argparse.Namespace) -> int:
    """The workflow's pre-flight as the pages show it (`preflight.workflow_preflight`): the
    workflow's own DNS option unless --skip-mx, suppressions, dedupe window, render check."""
    workflow = services.find_workflow(ws, args.workflow)
    print(f"dry run of workflow {workflow.name!r}: nothing is sent", flush=True)
    print_findings(services.workflow_unsubscribe_findings(ws, workflow.id))
    with csv_part_file(args.out) as out:  # each row written as it is checked
        result = preflight.workflow_preflight(
            ws,
            workflow.id,
            skip_mx=True if args.skip_mx else None,
            progress=ProgressLine(),
            out=out,
            samples_per_status=0,
        )
    print(f"DNS check: {'skipped' if result.skip_mx else 'done'}")
    for missing in result.missing:
        print(f"missing column: {missing.message}")
    print(f"{result.counts.total} rows: {result.counts.line()}")
    if result.dedupe_note:
        print(result.dedupe_note)
    if result.abort_reason:
        print(result.abort_reason)
    print(f"would send to {result.to_send} recipients")
    for step in result.steps[1:]:  # a multi-step workflow: what each follow-up reaches
        count = "not known yet" if step.reach is None else f"{step.reach} recipients"
        print(
            f"step {step.step} ({step.delay_days} days after step {step.step - 1}): {count}; "
            f"{step.note}"
        )
    print(f"wrote {args.out}")
    return EXIT_OK
