"""Senders: one module per provider (outbox, smtp, sendgrid, mailgun, ses), each a `Sender`
(`base`), and the registry that opens the one an engine URL names (`engine_url` parses it).

Adding a provider: one module with a sender class and its config, its URL form in
`engine_url`, one entry in `_SENDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outreach_core.adapters.senders import mailgun, sendgrid, ses
from outreach_core.adapters.senders.base import Sender, SendResult
from outreach_core.adapters.senders.engine_url import (
    EngineUrl,
    engine_config,
    mask_url,
    parse_engine_url,
)
from outreach_core.adapters.senders.outbox import OutboxSender
from outreach_core.adapters.senders.smtp import SmtpSender

__all__ = ["EngineUrl", "SendResult", "Sender", "mask_url", "open_sender", "parse_engine_url"]

_SENDERS: dict[str, Callable[[Any, int], Sender]] = {
    "mailgun": lambda config, n: mailgun.MailgunSender(config, concurrency=n),
    "outbox": lambda folder, n: OutboxSender(folder),
    "sendgrid": lambda config, n: sendgrid.SendGridSender(config, concurrency=n),
    "ses": lambda config, n: ses.SesSender(config, concurrency=n),
    "smtp": lambda config, n: SmtpSender(config, pool_size=n),
    "smtps": lambda config, n: SmtpSender(config, pool_size=n),
}


def open_sender(url: str, *, concurrency: int) -> Sender:
    """A sender for the URL, to be used as `async with`."""
    kind, config = engine_config(url)
    return _SENDERS[kind](config, concurrency)
