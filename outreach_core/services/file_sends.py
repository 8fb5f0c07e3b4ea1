"""Use case of sending a contacts file with a template folder and an engine URL (`send`):
read and check the three, then dry-run them or tie them into a workflow and queue its run.
`read_contacts` also reads the file `validate` checks.

Each send of a file is a workflow of its own, named after the template folder, the file and
the moment, so runs stay apart in the Runs and Results pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile, read_contacts_file
from outreach_core.adapters.contact_mapping import split_address_cells
from outreach_core.adapters.senders import parse_engine_url
from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.address_cells import SplitMode
from outreach_core.domain.message import header_safe
from outreach_core.domain.models import SendOptions
from outreach_core.domain.planning import SenderIdentity
from outreach_core.domain.templating import CompiledTemplate, TemplateSource, load_template_dir
from outreach_core.errors import InputError
from outreach_core.services import preflight

#: who a send is from when neither `--from` nor an SMTP user with an address says
DEFAULT_FROM = "Outreach <outreach@localhost.localdomain>"


@dataclass(frozen=True)
class FileSend:
    """A contacts file, a template folder and an engine URL, read and checked."""

    contacts: Path
    parsed: ParsedFile
    template_dir: Path
    source: TemplateSource
    template: CompiledTemplate
    engine_url: str = field(repr=False)
    engine_display: str
    sender: SenderIdentity


def sender_for(text: str | None, engine_user: str | None) -> SenderIdentity:
    """`Name <address>` as a sender; None: the engine's user when it is an address, else
    DEFAULT_FROM. An InputError names `--from` and shows the form."""
    if text is None:
        text = engine_user if engine_user and "@" in engine_user else DEFAULT_FROM
    if header_safe(text) != text.strip():
        raise InputError("--from: control characters (line breaks) are not allowed")
    name, address = parseaddr(text)
    if not address or "@" not in address:
        raise InputError(f'--from {text!r}: give an address, e.g. "Team <team@example.com>"')
    return SenderIdentity(email=address, name=name)


def read_contacts(
    path: Path,
    *,
    email_column: str | None = None,
    sheet: str | None = None,
    multi_address: SplitMode = SplitMode.FIRST,
) -> ParsedFile:
    """A contacts file (CSV or XLSX) to validate or send, its email column's cells holding
    several addresses split as the Audiences page splits them (`split_address_cells`: the
    first address, or one row each); its `notes` say what was guessed or split."""
    parsed = read_contacts_file(path, email_column=email_column, sheet=sheet)
    return split_address_cells(parsed, multi_address)


def read_file_send(
    contacts: Path,
    template_dir: Path,
    engine_url: str,
    from_text: str | None,
    *,
    multi_address: SplitMode = SplitMode.FIRST,
) -> FileSend:
    """Read the file (cells holding several addresses split: `multi_address`) and the
    template folder, compile the template, parse the engine URL and the sender, in that
    order; the first that is unusable raises (InputError, TemplateError, ConfigError)."""
    parsed = read_contacts(contacts, multi_address=multi_address)
    source = load_template_dir(template_dir)
    template = CompiledTemplate(source)
    engine = parse_engine_url(engine_url)
    sender = sender_for(from_text, engine.username)
    return FileSend(
        contacts, parsed, template_dir, source, template, engine_url, engine.display, sender
    )


def dry_run_file_send(ws: Workspace, send: FileSend, options: SendOptions) -> preflight.DryRun:
    """What sending the file with these options would do with each row; nothing is sent."""
    return preflight.dry_run(
        ws,
        send.parsed.rows,
        email_column=send.parsed.email_column,
        template=send.template,
        sender=send.sender,
        unsubscribe_base_url=options.unsubscribe_base_url,
        skip_mx=options.skip_mx,
    )


def queue_file_send(ws: Workspace, send: FileSend, options: SendOptions, *, actor: str) -> int:
    """Save the file as an audience, the folder as a template and the URL as an engine, tie
    them into a new workflow and queue its run; returns the run id."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    template_name = send.template_dir.resolve().name
    workflow = services.setup_workflow(
        ws,
        name=f"{template_name} to {send.contacts.name} ({stamp})",
        parsed=send.parsed,
        template=send.source,
        engine_url=send.engine_url,
        from_email=send.sender.email,
        from_name=send.sender.name,
        options=options,
        actor=actor,
        audience_name=f"{send.contacts.name} ({stamp})",
        template_name=template_name,
        engine_name=f"cli {send.engine_display}",
        engine_versions=True,  # never change the secret other runs resume with
    )
    return services.queue_run(ws, workflow.id, trigger="cli", actor=actor)
