"""SendGrid v3 Mail Send over HTTPS.

    sendgrid://API_KEY@[?region=eu][&endpoint=https://...]

202 with `X-Message-Id` is success. Classes: 429 transient (waits for `X-RateLimit-Reset` or
`Retry-After` when sent); 401 (bad key, also "Maximum credits exceeded") and 451 (data
residency) stop the engine; other 4xx are permanent; 5xx and lost answers are ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outreach_core.adapters.senders.base import SendResult
from outreach_core.adapters.senders.http import HttpSender, post, status_error
from outreach_core.domain.message import DELIVERY_HEADER, Outgoing
from outreach_core.errors import SendError, SendErrorKind

ENDPOINTS = {"us": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}
#: SendGrid refuses these in `headers`; they come from the structured fields
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
        "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
        "mime-version", "date", "message-id",
    )
)  # fmt: skip
#: the custom_args key that carries our delivery id into SendGrid's events
DELIVERY_ARG = "outreach_delivery"


def response_kind(status: int) -> SendErrorKind | None:
    """None for success, else how SendGrid's answer is treated (see the module docstring)."""
    if status in (200, 202):
        return None
    if status in (401, 451):
        return SendErrorKind.ENGINE
    if status == 429:
        return SendErrorKind.TRANSIENT
    if status >= 500:
        return SendErrorKind.AMBIGUOUS
    return SendErrorKind.PERMANENT


@dataclass(frozen=True)
class SendGridConfig:
    """The key is never printed; `where` names the endpoint."""

    api_key: str
    endpoint: str

    @property
    def where(self) -> str:
        return f"sendgrid {self.endpoint}"


def payload(outgoing: Outgoing) -> dict[str, Any]:
    """The v3 JSON body: text before HTML, our id in custom_args and in a header."""
    rendered = outgoing.rendered
    if rendered is None:
        raise ValueError("sendgrid needs the rendered parts of the message")
    content = []
    if rendered.text is not None:
        content.append({"type": "text/plain", "value": rendered.text})
    if rendered.html is not None:
        content.append({"type": "text/html", "value": rendered.html})
    headers = {
        name: value
        for name, value in outgoing.extra_headers.items()
        if name.lower() not in _RESERVED_HEADERS
    }
    headers[DELIVERY_HEADER] = str(outgoing.delivery_id)
    sender: dict[str, str] = {"email": outgoing.envelope_from}
    if outgoing.from_name:
        sender["name"] = outgoing.from_name
    return {
        "personalizations": [{"to": [{"email": outgoing.recipient}]}],
        "from": sender,
        "subject": outgoing.subject,
        "content": content,
        "headers": headers,
        "custom_args": {DELIVERY_ARG: str(outgoing.delivery_id)},
    }


class SendGridSender(HttpSender):
    """One `httpx.AsyncClient` per engine, opened with the context manager."""

    def __init__(self, config: SendGridConfig, *, concurrency: int = 4) -> None:
        super().__init__(concurrency=concurrency)
        self.config = config

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}", "Accept": "application/json"}

    async def send(self, outgoing: Outgoing) -> SendResult:
        assert self._client is not None, "use the sender as `async with`"
        response = await post(
            self._client,
            f"{self.config.endpoint}/v3/mail/send",
            where=self.config.where,
            json=payload(outgoing),
            headers=self._headers,
        )
        kind = response_kind(response.status_code)
        if kind is not None:
            raise status_error(response, where=self.config.where, kind=kind)
        provider_id = response.headers.get("x-message-id", "")
        return SendResult(
            message_id=outgoing.message_id,
            response=f"{response.status_code} accepted",
            provider_message_id=provider_id,
        )

    async def check(self) -> str:
        """Ask SendGrid which scopes the key has: proves the key works without sending."""
        response = await self._get_for_check(
            f"{self.config.endpoint}/v3/scopes", headers=self._headers, where=self.config.where
        )
        if response.status_code != 200:
            raise status_error(response, where=self.config.where, kind=SendErrorKind.ENGINE)
        scopes = response.json().get("scopes", [])
        if "mail.send" not in scopes:
            raise SendError(
                f"{self.config.where}: the API key lacks the mail.send scope",
                kind=SendErrorKind.ENGINE,
            )
        return f"{self.config.where}: key accepted, mail.send allowed"
