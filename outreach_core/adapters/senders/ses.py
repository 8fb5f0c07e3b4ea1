"""Amazon SES API v2 `SendEmail` over HTTPS, raw MIME, requests signed by botocore's SigV4.

    ses://ACCESS_KEY_ID:SECRET_ACCESS_KEY@REGION[?endpoint=https://...]

(percent-encode `/` and `+` in the secret). 200 with `MessageId` is success. The error type
(`x-amzn-ErrorType` header or `__type` in the body) decides: throttling is transient; account
paused, quota reached, bad credentials stop the engine; `MessageRejected` and other
client errors are permanent; 5xx and lost answers are ambiguous.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from outreach_core.adapters.senders.base import SendResult
from outreach_core.adapters.senders.http import HttpSender, error_text, post, status_error
from outreach_core.domain.message import Outgoing
from outreach_core.errors import SendError, SendErrorKind

#: the EmailTags name that carries our delivery id into SES events
DELIVERY_TAG = "outreach_delivery"

_TRANSIENT_TYPES = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
_ENGINE_TYPES = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "LimitExceededException",
        "MailFromDomainNotVerifiedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AccessDeniedException",
        "IncompleteSignature",
        "ExpiredTokenException",
    }
)


def default_endpoint(region: str) -> str:
    return f"https://email.{region}.amazonaws.com"


def error_type(response: httpx.Response) -> str:
    """`MessageRejected` from `x-amzn-ErrorType: MessageRejected:http://...` or the body."""
    header = response.headers.get("x-amzn-errortype", "")
    if header:
        return header.split(":", 1)[0]
    try:
        body = response.json()
    except ValueError:
        return ""
    found = body.get("__type", "") if isinstance(body, dict) else ""
    return str(found).rpartition("#")[2]


def response_kind(status: int, kind_name: str) -> SendErrorKind | None:
    """None for success, else how an SES answer is treated (see the module docstring)."""
    if status == 200:
        return None
    if kind_name in _TRANSIENT_TYPES or status == 429:
        return SendErrorKind.TRANSIENT
    if kind_name in _ENGINE_TYPES or status in (401, 403):
        return SendErrorKind.ENGINE
    if status >= 500:
        return SendErrorKind.AMBIGUOUS
    return SendErrorKind.PERMANENT


@dataclass(frozen=True)
class SesConfig:
    """Credentials are never printed; `where` names the region's endpoint."""

    access_key: str
    secret_key: str
    region: str
    endpoint: str

    @property
    def where(self) -> str:
        return f"ses {self.region} {self.endpoint}"


def signed_headers(config: SesConfig, method: str, url: str, body: bytes) -> dict[str, str]:
    """SigV4 headers for one request, computed by botocore (service `ses`)."""
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials(config.access_key, config.secret_key), "ses", config.region).add_auth(
        request
    )
    return dict(request.headers.items())


def payload(outgoing: Outgoing) -> bytes:
    """SendEmail with the whole MIME message as Raw content and our id as an EmailTag."""
    body = {
        "FromEmailAddress": outgoing.envelope_from,
        "Destination": {"ToAddresses": [outgoing.recipient]},
        "Content": {"Raw": {"Data": base64.b64encode(outgoing.data).decode()}},
        "EmailTags": [{"Name": DELIVERY_TAG, "Value": str(outgoing.delivery_id)}],
    }
    return json.dumps(body).encode()


class SesSender(HttpSender):
    """One `httpx.AsyncClient` per engine; every request signed afresh."""

    def __init__(self, config: SesConfig, *, concurrency: int = 4) -> None:
        super().__init__(concurrency=concurrency)
        self.config = config

    def _raise_for(self, response: httpx.Response, kind: SendErrorKind) -> SendError:
        name = error_type(response)
        detail = f"{name}: {error_text(response)}" if name else ""
        return status_error(response, where=self.config.where, kind=kind, detail=detail)

    async def send(self, outgoing: Outgoing) -> SendResult:
        url = f"{self.config.endpoint}/v2/email/outbound-emails"
        body = payload(outgoing)
        response = await post(
            self._client,
            url,
            where=self.config.where,
            content=body,
            headers=signed_headers(self.config, "POST", url, body),
        )
        kind = response_kind(response.status_code, error_type(response))
        if kind is not None:
            raise self._raise_for(response, kind)
        try:
            provider_id = str(response.json().get("MessageId", ""))
        except ValueError:
            provider_id = ""
        return SendResult(
            message_id=outgoing.message_id,
            response=f"{response.status_code} accepted",
            provider_message_id=provider_id,
        )

    async def check(self) -> str:
        """GetAccount: proves the credentials and says whether sending is enabled."""
        assert self._client is not None, "use the sender as `async with`"
        url = f"{self.config.endpoint}/v2/email/account"
        response = await self._get_for_check(
            url, headers=signed_headers(self.config, "GET", url, b""), where=self.config.where
        )
        if response.status_code != 200:
            raise self._raise_for(response, SendErrorKind.ENGINE)
        account = response.json()
        if account.get("SendingEnabled") is False:
            raise SendError(f"{self.config.where}: sending is paused", kind=SendErrorKind.ENGINE)
        quota = account.get("SendQuota", {})
        return (
            f"{self.config.where}: credentials accepted; quota "
            f"{quota.get('Max24HourSend', '?')} per day, {quota.get('MaxSendRate', '?')} per second"
        )
