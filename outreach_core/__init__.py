"""Outreach: the core that imports, validates, renders, sends and records.

Pages, the daemon and the CLI import what they need from here.
"""

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
from outreach_core.models import (
    DeliveryStatus,
    EngineLimits,
    Overview,
    RunStatus,
    RunSummary,
    SendOptions,
)
from outreach_core.settings import Settings, load_settings
from outreach_core.workspace import Workspace, open_workspace

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
