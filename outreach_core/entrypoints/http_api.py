"""The daemon's HTTP face: health, trigger a workflow, read a run. FastAPI, OpenAPI at /openapi.json.

Everything under /api/v1 needs `Authorization: Bearer <OUTREACH_API_TOKEN>`; without that
setting those endpoints answer 401 (the API is off), as does a wrong token. /health is open, for
probes. Routes live in APIRouters so more can be mounted with `app.include_router(...)`.
Every route refuses a request body over OUTREACH_HTTP_MAX_BODY_BYTES with 413, before reading it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Annotated

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outreach_core.adapters.workspace import Workspace
from outreach_core.domain.models import RunCounts
from outreach_core.domain.states import RunStatus
from outreach_core.entrypoints import webhook_routes
from outreach_core.errors import ConfigError, InputError, NotFound
from outreach_core.services import run_summaries, schedules

#: ids are 32-bit in the schema; larger numbers are refused before they reach the database
MAX_ID = 2**31 - 1

_bearer = HTTPBearer(auto_error=False, description="the OUTREACH_API_TOKEN setting")


class TriggerRequest(BaseModel):
    """Name the workflow by id or by its stable key (exactly one)."""

    workflow_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    workflow_key: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,99}$", examples=["weekly-digest"]
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TriggerRequest:
        if (self.workflow_id is None) == (self.workflow_key is None):
            raise ValueError("give workflow_id or workflow_key, exactly one")
        return self


class TriggerResponse(BaseModel):
    run_id: int
    status: RunStatus


class RunResponse(BaseModel):
    id: int
    workflow: str
    status: RunStatus
    status_reason: str | None
    trigger: str
    counts: RunCounts


class Health(BaseModel):
    status: str
    daemons_alive: int


class Problem(BaseModel):
    detail: str


def _workspace(request: Request) -> Workspace:
    return request.app.state.ws  # type: ignore[no-any-return]


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the bearer token equals the configured one (compared in constant time)."""
    expected: str | None = request.app.state.api_token
    if expected is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the API is off: set OUTREACH_API_TOKEN for the daemon",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


public = APIRouter()
api = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_token)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)


@public.get("/health", response_model=Health)
def get_health(ws: Annotated[Workspace, Depends(_workspace)]) -> Health:
    """Open: answers while the daemon works; says how many daemons are alive."""
    return Health(status="ok", daemons_alive=len(schedules.daemon_status(ws).alive))


@api.post("/trigger", response_model=TriggerResponse, status_code=status.HTTP_202_ACCEPTED)
def post_trigger(
    body: TriggerRequest, ws: Annotated[Workspace, Depends(_workspace)]
) -> TriggerResponse:
    """Queue a run of the workflow; a daemon sends it. Inside the workflow's dedupe window a
    repeated trigger sends nothing new."""
    run_id = schedules.trigger_workflow(
        ws, workflow_id=body.workflow_id, workflow_key=body.workflow_key, actor="api"
    )
    return TriggerResponse(run_id=run_id, status=RunStatus.QUEUED)


@api.get("/runs/{run_id}", response_model=RunResponse)
def get_run(
    run_id: Annotated[int, Path(ge=1, le=MAX_ID)], ws: Annotated[Workspace, Depends(_workspace)]
) -> RunResponse:
    """A run's state and delivery counts."""
    summary = run_summaries.run_summary(ws, run_id)
    return RunResponse(
        id=summary.run.id,
        workflow=summary.workflow_name,
        status=summary.run.status,
        status_reason=summary.run.status_reason,
        trigger=summary.run.trigger,
        counts=summary.counts,
    )


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before any route reads it.

    A Content-Length over the limit is answered at once, without reading a byte. Otherwise
    the body is read here, counted chunk by chunk as it streams in (chunked bodies carry no
    length), and refused as soon as the count passes the limit; so a route, whether it reads
    its body or not, only ever sees a body within the limit, and the server never holds more
    than the limit of any request.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name != b"content-length":
                continue
            if not value.isdigit():
                await self._answer(send, 400, "Content-Length is not a number")
                return
            if len(value) > 18 or int(value) > self.max_bytes:
                await self._refuse(send)
                return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal body
            if body is None:
                return await receive()  # what comes after the body: a disconnect
            message, body = body, None
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        await self._answer(
            send,
            413,
            f"request body over {self.max_bytes} bytes refused (OUTREACH_HTTP_MAX_BODY_BYTES)",
        )

    @staticmethod
    async def _answer(send: Send, code: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # the rest of a refused body is not wanted: the connection closes after the answer
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(
    ws: Workspace, *, api_token: str | None, http: httpx.Client | None = None
) -> FastAPI:
    """The HTTP app over a workspace; `api_token` None turns the /api/v1 endpoints off (401).

    `http` is the client the SNS webhook fetches certificates and confirms subscriptions with
    (default: one with a 10 s timeout that follows no redirect).
    """
    app = FastAPI(title="Outreach", version="1", description=__doc__)
    app.state.ws = ws
    app.state.api_token = api_token or None
    app.include_router(public)
    app.include_router(api)
    # unsubscribe links and provider webhooks: no bearer token (recipients and providers cannot
    # send it); each route checks its own signature instead
    app.include_router(webhook_routes.build_router(ws, http=http))
    app.add_middleware(BodyLimit, max_bytes=ws.settings.http_max_body_bytes)

    @app.exception_handler(NotFound)
    def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(InputError)
    def _bad_input(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY)

    return app


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` into a pair; an InputError shows the form."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--http {text!r}: write HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


class HttpServer:
    """uvicorn in a background thread; `stop()` asks it to finish its requests and exit."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="http", daemon=True)

    def _serve(self) -> None:
        # uvicorn reports a failed start (port taken) with sys.exit(1) after logging the cause;
        # in this thread that only ends the thread, which `start` notices and reports.
        try:
            self.server.run()
        except SystemExit:
            return

    def start(self, *, timeout: float = 15.0) -> HttpServer:
        """Start serving; a ConfigError when it cannot listen (port taken, bad address)."""
        config = self.server.config
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"cannot serve HTTP on {config.host}:{config.port} (in use or not an address "
                    "of this machine); choose another --http HOST:PORT"
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
