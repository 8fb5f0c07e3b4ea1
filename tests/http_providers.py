"""Loopback stand-ins for the SendGrid and Mailgun send APIs, answering as their docs say.

Each is a real HTTP server on 127.0.0.1 (stdlib `ThreadingHTTPServer`). Answers are scripted
per recipient: `script[address] = [Answer(...), ...]` is consumed one answer per request, then
the default success answer applies. `Answer(drop=True)` closes the connection without a reply.
Every request is recorded with its parsed body.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from smtp_server import free_port


@dataclass(frozen=True)
class Answer:
    """One scripted reply."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def json_answer(status: int, body: Any, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
    )


@dataclass
class Seen:
    """One request as the fake understood it."""

    path: str
    headers: dict[str, str]
    recipient: str
    fields: dict[str, Any]


class FakeProvider:
    """Base: start/stop, the script, the record. Subclasses parse and authorise requests."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.port = free_port()
        self.script: dict[str, list[Answer]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = fake.answer(self.path, dict(self.headers.items()), body)
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeProvider:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        refusal = self.refuse_auth(lowered)
        if refusal is not None:
            return refusal
        checked = self.check_answer(path)
        if checked is not None:
            return checked
        recipient, fields = self.parse(path, lowered, body)
        with self.lock:
            self.seen.append(Seen(path, lowered, recipient, fields))
            queued = self.script.get(recipient)
            if queued:
                return queued.pop(0)
        return self.success()

    def sent_to(self, recipient: str) -> int:
        return sum(1 for s in self.seen if s.recipient == recipient)

    # provider-specific parts
    def refuse_auth(self, headers: dict[str, str]) -> Answer | None:
        raise NotImplementedError

    def parse(self, path: str, headers: dict[str, str], body: bytes) -> tuple[str, dict]:
        raise NotImplementedError

    def check_answer(self, path: str) -> Answer | None:
        """The answer to the read-only request an engine's connection check makes, if it is one."""
        return None

    def success(self) -> Answer:
        raise NotImplementedError


class FakeSendGrid(FakeProvider):
    """POST /v3/mail/send: 202 + X-Message-Id, JSON errors `{"errors": [{"message", "field"}]}`."""

    def refuse_auth(self, headers: dict[str, str]) -> Answer | None:
        if headers.get("authorization") != f"Bearer {self.key}":
            return json_answer(
                401, {"errors": [{"field": None, "message": "The provided authorization grant "
                                  "is invalid, expired, or revoked"}]}
            )  # fmt: skip
        return None

    def check_answer(self, path: str) -> Answer | None:
        if path == "/v3/scopes":  # GET /v3/scopes lists what the key may do
            return json_answer(200, {"scopes": ["mail.send", "user.profile.read"]})
        return None

    def parse(self, path: str, headers: dict[str, str], body: bytes) -> tuple[str, dict]:
        payload = json.loads(body)
        return payload["personalizations"][0]["to"][0]["email"], payload

    def success(self) -> Answer:
        return Answer(202, b"", {"X-Message-Id": f"sg-{self.next_id()}"})


def sendgrid_error(status: int, message: str, **headers: str) -> Answer:
    return json_answer(status, {"errors": [{"field": None, "message": message}]}, **headers)


class FakeMailgun(FakeProvider):
    """POST /v3/<domain>/messages.mime (multipart form): 200 `{"id", "message"}`.

    A bad key gets a plain-text 401 ("Forbidden"), as Mailgun does, not JSON.
    """

    def refuse_auth(self, headers: dict[str, str]) -> Answer | None:
        expected = "Basic " + base64.b64encode(f"api:{self.key}".encode()).decode()
        if headers.get("authorization") != expected:
            return Answer(401, b"Forbidden", {"Content-Type": "text/plain"})
        return None

    def check_answer(self, path: str) -> Answer | None:
        if path.startswith("/v4/domains/"):  # GET /v4/domains/<domain>: the domain's record
            name = path.removeprefix("/v4/domains/")
            return json_answer(200, {"domain": {"name": name, "state": "active"}})
        return None

    def parse(self, path: str, headers: dict[str, str], body: bytes) -> tuple[str, dict]:
        if not path.endswith("/messages.mime"):
            return "", {}
        head = f"Content-Type: {headers['content-type']}\r\n\r\n".encode()
        form = message_from_bytes(head + body, policy=policy.HTTP)
        fields: dict[str, Any] = {}
        for part in form.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_content_type() == "message/rfc822":
                fields[name] = part.get_payload(0).as_bytes()
            else:
                fields[name] = part.get_payload(decode=True)
        return fields["to"].decode(), fields

    def success(self) -> Answer:
        n = self.next_id()
        return json_answer(
            200, {"id": f"<20261129.{n}@mg.example.com>", "message": "Queued. Thank you."}
        )


def mailgun_error(status: int, message: str, **headers: str) -> Answer:
    return json_answer(status, {"message": message}, **headers)
