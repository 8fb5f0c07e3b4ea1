"""Every error Outreach raises on purpose.

    OutreachError
    ├── ConfigError            a setting is missing or malformed
    ├── InputError             a file, template or engine URL the user gave cannot be used
    │   ├── FieldErrors        form fields that cannot be used, each with its own message
    │   ├── TemplateError      a template does not compile or does not render for a row
    │   ├── SourceError        a SQL source failed: connection, timeout, SQL error, row cap
    │   └── SignatureError     a webhook or link whose signature does not check out
    ├── MailboxError           the unsubscribe mailbox (IMAP) could not be read
    ├── IllegalTransition      a run or delivery was asked to move to a state it cannot reach
    ├── NotFound               a row that was named does not exist
    ├── RunBusy                another live executor holds the run
    └── SendError              a message could not be handed to the engine
        (its ``kind`` says whether it is transient, ambiguous, permanent or engine-level)

Messages never contain a secret: adapters name the engine and host, not credentials.
"""

from __future__ import annotations

from enum import StrEnum


class OutreachError(Exception):
    """Base class: the CLI and the pages catch this and show its message."""


class ConfigError(OutreachError):
    """A setting is missing or malformed; the message names the variable."""


class InputError(OutreachError):
    """Input from the user (file, URL, option) cannot be used; the message says why."""


class FieldErrors(InputError):
    """One or more fields of a form cannot be used; `errors` maps field -> plain message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class TemplateError(InputError):
    """A template fails to compile or to render; the message names the part and line."""


class SourceError(InputError):
    """A SQL source could not be read; the message names the masked URL and the cause."""


class SignatureError(InputError):
    """A webhook request or a signed link was not signed by whom it claims; refused."""


class MailboxError(OutreachError):
    """The unsubscribe mailbox could not be read; the message names the masked URL and why."""


class IllegalTransition(OutreachError):
    """A state change that the state machine does not allow."""


class NotFound(OutreachError):
    """A named run, audience, template, engine or workflow does not exist."""


class RunBusy(OutreachError):
    """A run is held by an executor that is still alive."""


class SendErrorKind(StrEnum):
    """How a failed send is treated."""

    #: clearly not sent, worth retrying later (4xx reply, connect refused, 429)
    TRANSIENT = "transient"
    #: may have been delivered (drop or timeout after DATA, 5xx from an API): never resent
    AMBIGUOUS = "ambiguous"
    #: the provider refused this recipient or message for good
    PERMANENT = "permanent"
    #: the engine itself cannot send (bad credentials, quota): the run pauses
    ENGINE = "engine"


class SendError(OutreachError):
    """A message was not accepted; ``kind`` decides retry, record or pause."""

    def __init__(
        self,
        message: str,
        *,
        kind: SendErrorKind,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        #: seconds the provider asked us to wait (Retry-After, X-RateLimit-Reset), if it said
        self.retry_after = retry_after
