"""Mailgun Messages API over HTTPS, sending our own MIME message (`messages.mime`).

    mailgun://API_KEY@DOMAIN[?region=eu][&endpoint=https://...]

200 with `{"id": "<...>"}` is success. Classes: 429 transient (waits as the headers say);
401/403 (bad key, access denied) and 420 (domain sending limit reached) stop the engine;
other 4xx are permanent; 5xx and lost answers are ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from outreach_core.adapters.senders.base import SendResult
from outreach_core.adapters.senders.http import HttpSender, post, status_error
from outreach_core.domain.message import Outgoing
from outreach_core.errors import SendErrorKind

ENDPOINTS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
#: the `v:` variable that carries our delivery id into Mailgun's events
DELIVERY_VARIABLE = "v:outreach-delivery"


def response_kind(status: int) -> SendErrorKind | None:
    """None for success, else how Mailgun's answer is treated (see the module docstring)."""
    if status == 200:
        return None
    if status in (401, 403, 420):
        return SendErrorKind.ENGINE
    if status == 429:
        return SendErrorKind.TRANSIENT
    if status >= 500:
        return SendErrorKind.AMBIGUOUS
    return SendErrorKind.PERMANENT


@dataclass(frozen=True)
class MailgunConfig:
    """The key is never printed; `where` names endpoint and domain."""

    api_key: str
    domain: str
    endpoint: str

    @property
    def where(self) -> str:
        return f"mailgun {self.endpoint} ({self.domain})"


class MailgunSender(HttpSender):
    """One `httpx.AsyncClient` per engine, Basic auth as `api`."""

    def __init__(self, config: MailgunConfig, *, concurrency: int = 4) -> None:
        super().__init__(concurrency=concurrency)
        self.config = config

    @property
    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth("api", self.config.api_key)

    async def send(self, outgoing: Outgoing) -> SendResult:
        assert self._client is not None, "use the sender as `async with`"
        response = await post(
            self._client,
            f"{self.config.endpoint}/v3/{self.config.domain}/messages.mime",
            where=self.config.where,
            auth=self._auth,
            data={"to": outgoing.recipient, DELIVERY_VARIABLE: str(outgoing.delivery_id)},
            files={"message": ("message.eml", outgoing.data, "message/rfc822")},
        )
        kind = response_kind(response.status_code)
        if kind is not None:
            raise status_error(response, where=self.config.where, kind=kind)
        try:
            provider_id = str(response.json().get("id", ""))
        except ValueError:
            provider_id = ""
        return SendResult(
            message_id=outgoing.message_id,
            response=f"{response.status_code} queued",
            provider_message_id=provider_id,
        )

    async def check(self) -> str:
        """Read the domain's record: proves key and domain without sending."""
        response = await self._get_for_check(
            f"{self.config.endpoint}/v4/domains/{self.config.domain}",
            auth=self._auth,
            where=self.config.where,
        )
        if response.status_code != 200:
            raise status_error(response, where=self.config.where, kind=SendErrorKind.ENGINE)
        return f"{self.config.where}: key and domain accepted"
