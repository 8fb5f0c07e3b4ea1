"""What the HTTP engines (SendGrid, Mailgun, SES) share: one client, transport errors, waits.

A transport failure is classed by whether the request can have reached the provider: a
refused or timed-out *connection* means nothing was sent (transient); a timeout or drop while
waiting for the answer means it may have been (ambiguous, never resent).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from outreach_core.adapters.url_secrets import mask_url
from outreach_core.errors import InputError, SendError, SendErrorKind

#: connect fast, give the provider time to answer
TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=30.0)
#: the longest a provider-requested wait is honoured inside one delivery's retries
MAX_HONOURED_WAIT_S = 300.0

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def new_client(*, concurrency: int) -> httpx.AsyncClient:
    """One client per engine: pooled keep-alive connections, bounded timeouts."""
    limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=None)
    return httpx.AsyncClient(timeout=TIMEOUT, limits=limits, follow_redirects=False)


def endpoint_override(query: Mapping[str, str], *, default: str) -> str:
    """`?endpoint=http://127.0.0.1:8025` points an engine at a local stand-in (tests, proxies)."""
    endpoint = query.get("endpoint", default).rstrip("/")
    parts = urlsplit(endpoint)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        shown = mask_url(endpoint)
        raise InputError(f"engine URL: endpoint={shown!r} is not an http(s) URL with a valid port")
    return endpoint


def retry_after_seconds(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (epoch).

    `now` is Unix time; a reset in the past means "now" (0).
    """
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.replace(".", "", 1).isdigit():
            return float(value)
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = headers.get("x-ratelimit-reset")
    if reset and reset.strip().replace(".", "", 1).isdigit():
        return max(0.0, float(reset) - now)
    return None


async def post(client: httpx.AsyncClient, url: str, *, where: str, **kwargs: Any) -> httpx.Response:
    """POST, turning transport failures into SendErrors of the right kind."""
    try:
        return await client.post(url, **kwargs)
    except _NOT_SENT as exc:
        raise SendError(
            f"{where}: cannot connect ({type(exc).__name__})", kind=SendErrorKind.TRANSIENT
        ) from None
    except httpx.TransportError as exc:
        raise SendError(
            f"{where}: {type(exc).__name__} while waiting for the answer; the message may "
            "have been accepted",
            kind=SendErrorKind.AMBIGUOUS,
        ) from None


def error_text(response: httpx.Response) -> str:
    """The provider's error message, read defensively (not every error body is JSON)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return "; ".join(str(e.get("message", "")) for e in errors)[:300]
        for key in ("message", "Message", "error"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:200]


def status_error(
    response: httpx.Response, *, where: str, kind: SendErrorKind, detail: str = ""
) -> SendError:
    """A SendError for an HTTP answer, carrying any wait the provider asked for."""
    text = detail or error_text(response)
    wait = retry_after_seconds(response.headers, now=time.time())
    return SendError(
        f"{where}: HTTP {response.status_code}" + (f" {text}" if text else ""),
        kind=kind,
        code=response.status_code,
        retry_after=None if wait is None else min(wait, MAX_HONOURED_WAIT_S),
    )


class HttpSender:
    """What every HTTP engine shares: one `httpx.AsyncClient`, opened with `async with`."""

    def __init__(self, *, concurrency: int = 4) -> None:
        self._concurrency = concurrency
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        self._client = new_client(concurrency=self._concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _get_for_check(self, url: str, *, where: str, **kwargs: Any) -> httpx.Response:
        """A GET made by `check()`: not reaching the provider is an engine error."""
        assert self._client is not None, "use the sender as `async with`"
        try:
            return await self._client.get(url, **kwargs)
        except httpx.TransportError as exc:
            raise SendError(
                f"{where}: cannot connect ({type(exc).__name__})", kind=SendErrorKind.ENGINE
            ) from None
