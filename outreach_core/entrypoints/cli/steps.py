"""`workflow-step add|list|remove`: a workflow's follow-up steps from the command line."""

from __future__ import annotations

import argparse

from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import Workflow
from outreach_core.entrypoints.cli.common import EXIT_OK
from outreach_core.errors import NotFound
from outreach_core.services import follow_ups, templates, workflows

ACTOR = "cli"


def _workflow(ws: Workspace, key_or_id: str) -> Workflow:
    """A workflow by key, name or id."""
    for workflow in workflows.list_workflows(ws):
        if workflow.key == key_or_id:
            return workflow
    return workflows.find_workflow(ws, key_or_id)


def _template_id(ws: Workspace, name_or_id: str) -> int:
    every = templates.list_templates(ws)
    for template in every:
        if template.name == name_or_id or (name_or_id.isdigit() and template.id == int(name_or_id)):
            return template.id
    known = ", ".join(repr(t.name) for t in every) or "none yet"
    raise NotFound(f"there is no template {name_or_id!r}; templates: {known}")


def _print_steps(ws: Workspace, workflow: Workflow) -> None:
    names = {t.id: t.name for t in templates.list_templates(ws)}
    print(f"workflow {workflow.key}: step 1: its own template")
    for step in follow_ups.list_steps(ws, workflow.id):
        how = "same thread (Re:)" if step.thread else "new thread"
        name = names.get(step.template_id, f"template {step.template_id}")
        print(
            f"  step {step.step}: {name}, {step.delay_days} days after step {step.step - 1}, {how}"
        )


def cmd_workflow_step(ws: Workspace, args: argparse.Namespace) -> int:
    """List, add or remove a workflow's follow-up steps."""
    workflow = _workflow(ws, args.workflow)
    if args.action == "add":
        step = follow_ups.add_step(
            ws,
            workflow.id,
            template_id=_template_id(ws, args.template),
            delay_days=args.days,
            thread=not args.new_thread,
            actor=ACTOR,
        )
        print(f"added {step}")
    elif args.action == "remove":
        follow_ups.remove_step(ws, workflow.id, args.step, actor=ACTOR)
        print(f"removed step {args.step} and the steps after it")
    _print_steps(ws, workflow)
    return EXIT_OK
