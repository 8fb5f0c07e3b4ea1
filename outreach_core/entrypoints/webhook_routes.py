"""The compliance routes of the daemon's HTTP face: unsubscribe links and provider webhooks.

`build_router(ws)` returns an APIRouter; the HTTP app includes it. Every route answers 2xx
when it did its job, 400 for a body it cannot read, 403 for a signature or token that does not
check out, a stale or replayed request, an SNS topic that is not listed (or a webhook whose
key is not configured), never a redirect: RFC 8058 one-click POSTs must get their answer
directly. A webhook request is taken once: its provider id (SNS MessageId, the SendGrid
signed bytes, the Mailgun token) is stored with the events it recorded.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from outreach_core.adapters import provider_webhooks
from outreach_core.adapters.workspace import Workspace
from outreach_core.errors import InputError, SignatureError
from outreach_core.services import compliance

log = logging.getLogger("outreach.compliance_api")

#: SNS certificates kept in memory (by URL) so each message does not fetch one
CERT_CACHE_SIZE = 16

_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_JSON_ARRAY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
    }
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36rem; margin: 3rem auto">
<h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


class _Certificates:
    """SNS signing certificates fetched over HTTP from allowed hosts, cached by URL."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> bytes:
        with self._lock:
            if url in self._cache:
                return self._cache[url]
        try:
            response = self._client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SignatureError(
                f"SNS signing certificate could not be fetched: {type(exc).__name__}"
            ) from None
        with self._lock:
            self._cache[url] = response.content
            while len(self._cache) > CERT_CACHE_SIZE:
                self._cache.popitem(last=False)
        return response.content


def build_router(ws: Workspace, *, http: httpx.Client | None = None) -> APIRouter:
    """The unsubscribe and webhook routes over one workspace.

    `http` fetches SNS certificates and confirms SNS subscriptions (default: a client with a
    10 s timeout that follows no redirect).
    """
    router = APIRouter(tags=["compliance"])
    client = http or httpx.Client(timeout=10.0, follow_redirects=False)
    certificates = _Certificates(client)
    settings = ws.settings
    cert_hosts = settings.sns_listed_cert_hosts
    topics = settings.sns_topics
    max_age_s = settings.webhook_max_age_s
    # a request passes the freshness check for at most max age + skew after it is first seen
    keep_ids = timedelta(seconds=max_age_s + 2 * provider_webhooks.FUTURE_SKEW_S)

    # --- unsubscribe -----------------------------------------------------------------------

    def _confirm_page(email: str, token: str) -> HTMLResponse:
        if not compliance.token_is_valid(ws, email, token):
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 403)
        shown = html.escape(email)
        form = (
            f"<p>Stop sending email to <strong>{shown}</strong>?</p>"
            '<form method="post"><button type="submit">Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)

    async def _unsubscribe(email: str, token: str, via: str) -> HTMLResponse:
        try:
            done = await run_in_threadpool(
                compliance.unsubscribe_address, ws, email, token, via=via
            )
        except InputError:
            done = False
        if not done:
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 403)
        shown = html.escape(email)
        return _page("Unsubscribed", f"<p><strong>{shown}</strong> will get no more email.</p>")

    @router.get("/unsubscribe", response_class=HTMLResponse)
    async def unsubscribe_form(
        email: str = Query(max_length=320), token: str = Query(max_length=100)
    ) -> HTMLResponse:
        """The confirmation page of a link made by `UnsubscribeLinks` (?email=&token=)."""
        return await run_in_threadpool(_confirm_page, email, token)

    @router.post("/unsubscribe", response_class=HTMLResponse)
    async def unsubscribe_now(
        email: str = Query(max_length=320), token: str = Query(max_length=100)
    ) -> HTMLResponse:
        """RFC 8058 one-click (body `List-Unsubscribe=One-Click`) or the page's button."""
        return await _unsubscribe(email, token, "unsubscribe link")

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_form_path(
        token: str = Path(max_length=100), email: str = Query(max_length=320)
    ) -> HTMLResponse:
        """The same page for links of the form /unsubscribe/TOKEN?email=…"""
        return await run_in_threadpool(_confirm_page, email, token)

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_now_path(
        token: str = Path(max_length=100), email: str = Query(max_length=320)
    ) -> HTMLResponse:
        """One-click for links of the form /unsubscribe/TOKEN?email=…"""
        return await _unsubscribe(email, token, "unsubscribe link")

    # --- webhooks ----------------------------------------------------------------------------

    async def _record_once(
        provider: str, event_id: str, events: list[compliance.ProviderEvent]
    ) -> int | None:
        return await run_in_threadpool(
            lambda: compliance.record_events_once(
                ws, events, provider=provider, event_id=event_id, keep_for=keep_ids
            )
        )

    def _json(body: bytes, provider: str) -> Any:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HTTPException(400, f"{provider} body is not JSON") from None

    @router.post("/webhooks/ses", openapi_extra=_JSON_BODY)
    async def ses_webhook(request: Request) -> JSONResponse:
        """SES events through SNS: signature checked, subscriptions confirmed."""
        message = _json(await request.body(), "SNS")
        if not isinstance(message, dict):
            raise HTTPException(400, "SNS body is not a JSON object")
        try:
            # the cheap refusals first: no certificate is fetched for a foreign or old message
            provider_webhooks.check_sns_topic(message, topics)
            provider_webhooks.check_sns_timestamp(message, now=time.time(), max_age_s=max_age_s)
            provider_webhooks.check_cert_url(str(message.get("SigningCertURL", "")), cert_hosts)
            cert = await run_in_threadpool(certificates.get, str(message["SigningCertURL"]))
            provider_webhooks.verify_sns(message, cert)
        except SignatureError as exc:
            log.warning("SES webhook refused: %s", exc)
            raise HTTPException(403, str(exc)) from None
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            return await run_in_threadpool(_confirm_subscription, str(message["SubscribeURL"]))
        if kind == "UnsubscribeConfirmation":
            return JSONResponse({"recorded": 0})
        try:
            events = provider_webhooks.ses_events(message)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        recorded = await _record_once("ses", str(message["MessageId"]), events)
        if recorded is None:
            # SNS redelivers a message it thinks was lost: acknowledge it, record nothing
            log.info("SNS message delivered again; nothing recorded")
            return JSONResponse({"recorded": 0, "duplicate": True})
        return JSONResponse({"recorded": recorded})

    def _confirm_subscription(url: str) -> JSONResponse:
        try:
            provider_webhooks.check_cert_url(url, cert_hosts)
        except SignatureError as exc:
            raise HTTPException(403, f"SubscribeURL refused: {exc}") from None
        try:
            client.get(url).raise_for_status()
        except httpx.HTTPError as exc:
            # SNS resends the confirmation; 502 says the upstream step failed
            raise HTTPException(
                502, f"SNS subscription not confirmed: {type(exc).__name__}"
            ) from None
        log.info("SNS subscription confirmed")
        return JSONResponse({"confirmed": True})

    @router.post("/webhooks/sendgrid", openapi_extra=_JSON_ARRAY_BODY)
    async def sendgrid_webhook(request: Request) -> JSONResponse:
        """SendGrid's signed Event Webhook."""
        if not settings.sendgrid_webhook_public_key:
            raise HTTPException(403, "refused: OUTREACH_SENDGRID_WEBHOOK_PUBLIC_KEY is not set")
        body = await request.body()
        timestamp = request.headers.get(provider_webhooks.SENDGRID_TIMESTAMP_HEADER)
        try:
            key = provider_webhooks.load_sendgrid_key(settings.sendgrid_webhook_public_key)
            provider_webhooks.verify_sendgrid(
                key,
                body=body,
                signature=request.headers.get(provider_webhooks.SENDGRID_SIGNATURE_HEADER),
                timestamp=timestamp,
            )
            provider_webhooks.check_sendgrid_timestamp(
                str(timestamp), now=time.time(), max_age_s=max_age_s
            )
        except SignatureError as exc:
            log.warning("SendGrid webhook refused: %s", exc)
            raise HTTPException(403, str(exc)) from None
        try:
            events = provider_webhooks.sendgrid_events(body)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        replay_key = provider_webhooks.sendgrid_replay_key(str(timestamp), body)
        recorded = await _record_once("sendgrid", replay_key, events)
        if recorded is None:
            log.warning("SendGrid webhook refused: a replay")
            raise HTTPException(403, "SendGrid request was taken already; refused as a replay")
        return JSONResponse({"recorded": recorded})

    @router.post("/webhooks/mailgun", openapi_extra=_JSON_BODY)
    async def mailgun_webhook(request: Request) -> JSONResponse:
        """Mailgun's signed webhooks (JSON body)."""
        if not settings.mailgun_webhook_signing_key:
            raise HTTPException(403, "refused: OUTREACH_MAILGUN_WEBHOOK_SIGNING_KEY is not set")
        payload = _json(await request.body(), "Mailgun")
        if not isinstance(payload, dict):
            raise HTTPException(400, "Mailgun body is not a JSON object")
        try:
            signature, data = provider_webhooks.mailgun_parts(payload)
            provider_webhooks.verify_mailgun(
                settings.mailgun_webhook_signing_key,
                timestamp=signature.get("timestamp", ""),
                token=signature.get("token", ""),
                signature=signature.get("signature", ""),
                now=time.time(),
                max_age_s=settings.webhook_max_age_s,
            )
        except SignatureError as exc:
            log.warning("Mailgun webhook refused: %s", exc)
            raise HTTPException(403, str(exc)) from None
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        events = provider_webhooks.mailgun_events(data)
        recorded = await _record_once("mailgun", signature["token"], events)
        if recorded is None:
            log.warning("Mailgun webhook refused: a replay")
            raise HTTPException(403, "Mailgun token was used already; refused as a replay")
        return JSONResponse({"recorded": recorded})

    return router
