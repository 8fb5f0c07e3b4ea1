"""The daemon's HTTP face, served by uvicorn on a free loopback port.

`scheduler_daemon.py --http` as a subprocess: no token -> 401, the right token -> a run id and
the run completes, /health answers while the daemon sends. In-process: a schemathesis run over
the OpenAPI document finds no server error, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from outreach_core import services
from outreach_core.adapters.contact_files import ParsedFile
from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.domain.models import SendOptions, Workflow
from outreach_core.domain.templating import TemplateSource
from outreach_core.entrypoints.http_api import HttpServer, create_app
from outreach_core.errors import ConfigError

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
