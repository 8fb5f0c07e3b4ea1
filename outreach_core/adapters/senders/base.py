"""The contract every engine implements.

A sender is an async context manager. `send` hands one message to the provider and returns
what the provider said; it raises `SendError` whose `kind` tells the executor what to do:
TRANSIENT is retried, AMBIGUOUS is recorded as unknown and never resent, PERMANENT fails the
delivery, ENGINE pauses the run. Error messages name host and engine, never a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from outreach_core.domain.message import Outgoing


@dataclass(frozen=True)
class SendResult:
    """What the engine answered for an accepted message."""

    message_id: str
    response: str = ""
    #: the provider's own id (SendGrid X-Message-Id, Mailgun id, SES MessageId), if any
    provider_message_id: str = ""
    #: milliseconds the engine took to accept it (set by the executor around the call)
    latency_ms: int | None = None


class Sender(Protocol):
    """One engine, opened for a run."""

    async def send(self, outgoing: Outgoing) -> SendResult:
        """Hand one message to the engine."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

    async def check(self) -> str:
        """Test the connection and credentials without sending; a sentence on success.

        Raises SendError (kind ENGINE) saying what is wrong.
        """
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
