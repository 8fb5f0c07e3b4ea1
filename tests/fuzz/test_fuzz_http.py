"""Schemathesis over the compliance routes, served by uvicorn on loopback with every webhook
key configured: bounded generated requests never get a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from outreach_core.adapters.workspace import Workspace, open_workspace
from outreach_core.entrypoints.webhook_routes import build_router
from tests.asgi_server import serve_asgi
from tests.signing import TOPIC_ARN, SendGridSigner

from conftest import make_settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Workspace]]:
    tmp = Path(tmp_path_factory.mktemp("fuzz-http"))
    ws = open_workspace(make_settings(tmp))
    ws.settings = ws.settings.model_copy(
        update={
            "sns_cert_hosts": "127.0.0.1",
            "sns_topic_arns": TOPIC_ARN,
            "sendgrid_webhook_public_key": SendGridSigner().public_key,
            "mailgun_webhook_signing_key": "key-fuzz",
        }
    )
    app = FastAPI()
    app.include_router(build_router(ws))
    with serve_asgi(app) as base:
        yield base, ws
    ws.close()


def test_no_route_answers_5xx(served: tuple[str, Workspace]) -> None:
    """Verify generated requests (bodies, queries, paths) for every operation of the schema
    never crash a route: each answer is 2xx or a 4xx that says why."""
    base, _ = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7  # GET/POST unsubscribe (two forms), three webhooks
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=base)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            assert response.status_code in (200, 400, 403, 404, 405, 422)

        no_server_error()
