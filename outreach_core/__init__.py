"""Outreach: the core that imports, validates, renders, sends and records.

Pages, the daemon and the CLI import what they need from here.
"""

from outreach_core.adapters.settings import Settings, load_settings
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import EngineLimits, Overview, RunSummary, SendOptions
from outreach_core.domain.states import DeliveryStatus, RunStatus
from outreach_core.errors import (
    ConfigError,
    FieldErrors,
    IllegalTransition,
    InputError,
    NotFound,
    OutreachError,
    RunBusy,
    SendError,
    TemplateError,
)

__all__ = [
    "ConfigError",
    "DeliveryStatus",
    "EngineLimits",
    "FieldErrors",
    "IllegalTransition",
    "InputError",
    "NotFound",
    "OutreachError",
    "Overview",
    "RunBusy",
    "RunStatus",
    "RunSummary",
    "SendError",
    "SendOptions",
    "Settings",
    "TemplateError",
    "Workspace",
    "load_settings",
    "open_workspace",
]
