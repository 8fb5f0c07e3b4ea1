"""The daemon's HTTP face, served by uvicorn on a free loopback port.

`scheduler_daemon.py --http` as a subprocess: no token -> 401, the right token -> a run id and
the run completes, /health answers while the daemon sends; a 300 MB POST is refused with 413
before it is read, and the daemon's memory stays put. In-process: a schemathesis run over the
OpenAPI document finds no server error, and every route refuses a body over the limit, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from starlette.routing import Route

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.store import tables
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.http_api import HttpServer, create_app
from outreach_core.errors import ConfigError
from tests.asgi_server import serve_asgi

from conftest import REPO, cli_env, make_settings
from smtp_server import SmtpTestServer, free_port

TOKEN = "t0ken-for-tests-only"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROWS = 300


def make_workflow(ws: Workspace, engine_url: str, *, rate: float) -> Workflow:
    return services.setup_workflow(
        ws,
        name="Weekly digest",
        parsed=ParsedFile(
            source="contacts.csv",
            columns=["email", "name"],
            email_column="email",
            rows=[{"email": f"d{n}@example.com", "name": f"D{n}"} for n in range(ROWS)],
        ),
        template=TemplateSource("Digest for {{ name }}", None, "Hello {{ name }}"),
        engine_url=engine_url,
        from_email="team@example.com",
        from_name="Team",
        options=SendOptions(rate=rate, burst=1, skip_mx=True),
        actor="test",
    )


def wait_until_serving(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"nothing answered at {base}/health within 60 s")


@pytest.fixture
def sink() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


def start_daemon(tmp_path: Path, port: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "scheduler_daemon.py", "--interval", "0.5", "--http", f"127.0.0.1:{port}"],
        cwd=REPO, env=cli_env(tmp_path, **env), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def stop(daemon: subprocess.Popen) -> str:
    daemon.terminate()
    try:
        return daemon.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        daemon.kill()
        return daemon.communicate()[1]


def test_trigger_needs_the_token_then_the_run_completes_while_health_answers(
    tmp_path: Path, sink: SmtpTestServer
) -> None:
    """Verify: no token or a wrong one -> 401; the right one -> 202 with a run id; /health
    answers 200 while the daemon is sending it; the run completes; a repeated trigger inside
    the dedupe window sends nothing new; the token never appears in the daemon's log."""
    ws = open_workspace(make_settings(tmp_path))
    try:
        workflow = make_workflow(ws, sink.url, rate=60)
    finally:
        ws.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(tmp_path, port, OUTREACH_API_TOKEN=TOKEN)
    try:
        wait_until_serving(base)
        body = {"workflow_key": workflow.key}
        assert httpx.post(f"{base}/api/v1/trigger", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.post(f"{base}/api/v1/trigger", json=body, headers=wrong).status_code == 401
        assert httpx.get(f"{base}/api/v1/runs/1").status_code == 401

        answer = httpx.post(f"{base}/api/v1/trigger", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["run_id"]

        health_while_sending = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=AUTH, timeout=10).json()
            if run["status"] == "SENDING":
                health = httpx.get(f"{base}/health", timeout=10)
                health_while_sending.append((health.status_code, health.json()["daemons_alive"]))
            if run["status"] == "COMPLETED":
                break
            time.sleep(0.3)
        assert run["status"] == "COMPLETED", run
        assert run["counts"]["sent"] == ROWS
        assert health_while_sending and set(health_while_sending) == {(200, 1)}

        again = httpx.post(
            f"{base}/api/v1/trigger", json={"workflow_id": workflow.id}, headers=AUTH
        ).json()["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            repeat = httpx.get(f"{base}/api/v1/runs/{again}", headers=AUTH).json()
            if repeat["status"] == "COMPLETED":
                break
            time.sleep(0.3)
        assert repeat["counts"] == run["counts"] | {"sent": 0, "skipped": ROWS}
        assert len(sink.handler.received) == ROWS

        probe = subprocess.run(
            [sys.executable, "scheduler_daemon.py", "--health"],
            cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "1 daemon(s) alive" in probe.stdout

        missing = httpx.get(f"{base}/api/v1/runs/999999", headers=AUTH)
        assert missing.status_code == 404 and "no run 999999" in missing.json()["detail"]
        assert httpx.get(f"{base}/openapi.json").json()["paths"].keys() >= {
            "/health",
            "/api/v1/trigger",
            "/api/v1/runs/{run_id}",
        }
    finally:
        log = stop(daemon)
    assert TOKEN not in log
    assert daemon.returncode == 0, log
    probe = subprocess.run(
        [sys.executable, "scheduler_daemon.py", "--health"],
        cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 1  # the daemon unregistered on its clean stop
    assert "No scheduler daemon is running" in probe.stdout


def test_without_the_setting_the_api_answers_401(tmp_path: Path) -> None:
    """Verify a daemon started without OUTREACH_API_TOKEN refuses every API call, saying why."""
    ws = open_workspace(make_settings(tmp_path))
    ws.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(tmp_path, port)
    try:
        wait_until_serving(base)
        refused = httpx.post(f"{base}/api/v1/trigger", json={"workflow_id": 1}, headers=AUTH)
        assert refused.status_code == 401
        assert "OUTREACH_API_TOKEN" in refused.json()["detail"]
    finally:
        stop(daemon)


@pytest.fixture
def api_base(workspace: Workspace, tmp_path: Path) -> Iterator[str]:
    """The API of a workspace with one workflow, served by uvicorn on a free port."""
    make_workflow(workspace, f"outbox://{tmp_path}/outbox", rate=0)
    port = free_port()
    server = HttpServer(create_app(workspace, api_token=TOKEN), "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base)
    yield base
    server.stop()


def test_no_server_error_anywhere_in_the_openapi_document(api_base: str) -> None:
    """Verify requests generated from the OpenAPI document (25 per operation, with the token)
    never get a 5xx."""
    schema = schemathesis.openapi.from_url(f"{api_base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    # the API's own operations, and the unsubscribe and webhook routes served beside them
    assert {"/health", "/api/v1/trigger", "/api/v1/runs/{run_id}"} <= paths
    assert {"/unsubscribe/{token}", "/webhooks/sendgrid"} <= paths
    calls: list[tuple[str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error])
            calls.append((case.operation.path, response.status_code))

        no_server_error()
    assert len(calls) >= len(operations)
    assert max(code for _, code in calls) < 500
    # the token was accepted: the generated requests reached the API (the webhook routes check
    # provider signatures instead, and refuse these unsigned requests)
    assert 401 not in {code for path, code in calls if path.startswith("/api/")}


def test_a_taken_port_is_a_clear_error(sqlite_workspace: Workspace) -> None:
    """Verify serving on a port another socket holds raises ConfigError naming HOST:PORT."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(sqlite_workspace, api_token=TOKEN)
        with pytest.raises(ConfigError, match=f"cannot serve HTTP on 127.0.0.1:{port}"):
            HttpServer(app, "127.0.0.1", port).start()


# --- body limits --------------------------------------------------------------------------

MB = 1 << 20


def megabytes(total: int) -> Iterator[bytes]:
    """`total` bytes in 1 MB pieces, made as they are sent (never held at once)."""
    piece = b"x" * MB
    for _ in range(total // MB):
        yield piece


def post_streamed(
    port: int, path: str, chunks: Iterator[bytes], *, length: int | None
) -> tuple[int, int]:
    """POST the chunks over a raw socket, with `Content-Length: length` or, when None, chunked
    transfer encoding; stop sending as soon as the server answers. (status, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}{framing}\r\n\r\n".encode())
    sent = 0
    with sock:
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer is there: an attacker would stop too
                sock.sendall(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection after answering; the answer is read below
        answer = b""
        while b"\r\n" not in answer:
            part = sock.recv(4096)
            assert part, f"no answer after {sent} bytes"
            answer += part
    return int(answer.split(b" ", 2)[1]), sent


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.M)}


def test_a_300_mb_post_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """Verify the attack of one unauthenticated 300 MB POST against the daemon: with and
    without Content-Length, to the SES and Mailgun webhooks and the API, the daemon answers
    413 long before the body is sent, its memory does not grow (peak RSS within 8 MB of what
    it was), and it keeps serving."""
    ws = open_workspace(make_settings(tmp_path))
    ws.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = start_daemon(tmp_path, port, OUTREACH_API_TOKEN=TOKEN)
    try:
        wait_until_serving(base)
        # warm up what the first requests load, so the measure is of the bodies alone
        for _ in range(3):
            assert httpx.post(f"{base}/webhooks/ses", content=b"{}").status_code == 403
            assert post_streamed(port, "/webhooks/ses", megabytes(2 * MB), length=None)[0] == 413
        before = memory_kb(daemon.pid)["VmRSS"]
        # 5 resets the peak (VmHWM) to the current RSS: the peak below is these requests'
        Path(f"/proc/{daemon.pid}/clear_refs").write_text("5")
        total = 300 * MB
        for path in ("/webhooks/ses", "/webhooks/mailgun", "/api/v1/trigger"):
            for length in (total, None):
                code, sent = post_streamed(port, path, megabytes(total), length=length)
                assert code == 413, (path, length)
                assert sent < 50 * MB, f"{path}: {sent} bytes were taken before the answer"
        after = memory_kb(daemon.pid)
        assert after["VmHWM"] - before < 8 * 1024, (before, after)
        assert after["VmRSS"] - before < 8 * 1024, (before, after)
        refused = httpx.post(f"{base}/webhooks/ses", content=b"x" * (MB + 1))
        assert refused.status_code == 413
        assert "OUTREACH_HTTP_MAX_BODY_BYTES" in refused.json()["detail"]
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        log = stop(daemon)
    assert daemon.returncode == 0, log


def test_every_route_refuses_a_body_over_the_limit(workspace: Workspace, tmp_path: Path) -> None:
    """Verify each route of the app (every method and path in it), with a 2 KB limit: a 4 KB
    body is refused with 413 both with Content-Length and chunked, a trigger over the limit
    queues no run, and a body at the limit is still taken."""
    workflow = make_workflow(workspace, f"outbox://{tmp_path}/outbox", rate=0)
    workspace.settings = workspace.settings.model_copy(update={"http_max_body_bytes": 2048})
    app = create_app(workspace, api_token=TOKEN)
    # the operations of the OpenAPI document, and the document and its viewers themselves
    documented = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    served = [(m, r.path) for r in app.routes if isinstance(r, Route) for m in r.methods or ()]
    routes = [
        (method, path.replace("{run_id}", "1").replace("{token}", "t"))
        for method, path in documented + served
    ]
    assert len(documented) == 10  # health, trigger, run, unsubscribe (4), webhooks (3)
    trigger = json.dumps({"workflow_id": workflow.id}).encode()
    json_auth = AUTH | {"Content-Type": "application/json"}
    with serve_asgi(app) as base, httpx.Client(base_url=base, headers=json_auth) as client:
        for method, path in routes:
            big = trigger + b" " * 4096
            declared = client.request(method, path, content=big)
            assert declared.status_code == 413, (method, path, declared.text)
            if method != "HEAD":  # a HEAD answer has no body
                assert "OUTREACH_HTTP_MAX_BODY_BYTES" in declared.json()["detail"]
            chunked = client.request(method, path, content=iter([big[:1000], big[1000:]]))
            assert chunked.status_code == 413, (method, path, chunked.text)
        with workspace.db.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(tables.runs)).scalar() == 0
        at_limit = trigger + b" " * (2048 - len(trigger))
        taken = client.post("/api/v1/trigger", content=at_limit)
        assert taken.status_code == 202, taken.text
        chunked = client.post("/api/v1/trigger", content=iter([at_limit[:5], at_limit[5:]]))
        assert chunked.status_code == 202, chunked.text
