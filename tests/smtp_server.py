"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what arrives and can be told to fail.

Failures are programmed per recipient: `refuse_rcpt[address] = "550 5.1.1 no such user"`
answers RCPT with that reply; `fail_rcpt_times[address] = n` answers the first n RCPTs with
451 (or with `fail_rcpt_reply[address]`, e.g. a 421) and accepts afterwards; `drop_after_data`
closes the connection after DATA for addresses in it without replying (an ambiguous failure);
`slow_data[address] = seconds` waits that long before answering DATA (a slow server).
`drop_after_data_times[address] = n` drops the first n DATA for that address, then accepts.
`rcpt_attempts` counts every RCPT per address, accepted or not. `data_delay` holds every DATA
that long, and `peak_transactions` records the most DATA commands in progress at once.
`greylist = Greylist(clock, timedelta(minutes=10))` answers 451 to every recipient's RCPTs
until that long (of the test's clock) after its first one, as a greylisting server does.
`hold_reply[address] = seconds` stores the message, then waits that long before replying (it
arrived, but the sender hears so only later: a send in flight); `dropped` keeps the messages
of `drop_after_data` and `drop_after_data_times`, which the sender never heard of. Each
`Received` keeps the time it arrived (`at`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One accepted transaction as it came over the wire."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    #: when it was accepted (time.time()), for tests of the rate the server sees
    at: float = field(default_factory=time.time)

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Greylist:
    """Refuse each recipient with 451 until `delay` of `clock` has passed since its first RCPT."""

    clock: Callable[[], datetime]
    delay: timedelta
    reply: str = "451 4.7.1 greylisted, try again later"
    first_seen: dict[str, datetime] = field(default_factory=dict)

    def refuses(self, address: str) -> bool:
        now = self.clock()
        first = self.first_seen.setdefault(address, now)
        return now - first < self.delay


@dataclass
class RecordingHandler:
    """The aiosmtpd handler: stores accepted messages, applies programmed failures."""

    received: list[Received] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    fail_rcpt_times: dict[str, int] = field(default_factory=dict)
    fail_rcpt_reply: dict[str, str] = field(default_factory=dict)
    drop_after_data: set[str] = field(default_factory=set)
    slow_data: dict[str, float] = field(default_factory=dict)
    drop_after_data_times: dict[str, int] = field(default_factory=dict)
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    hold_reply: dict[str, float] = field(default_factory=dict)
    dropped: list[Received] = field(default_factory=list)
    data_delay: float = 0.0
    active_transactions: int = 0
    peak_transactions: int = 0
    connections: int = 0
    greylist: Greylist | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        key = address.lower()
        with self.lock:
            self.rcpt_attempts[key] += 1
        if key in self.refuse_rcpt:
            return self.refuse_rcpt[key]
        with self.lock:
            remaining = self.fail_rcpt_times.get(key, 0)
            if remaining:
                self.fail_rcpt_times[key] = remaining - 1
                return self.fail_rcpt_reply.get(key, "451 4.3.0 try again later")
            if self.greylist is not None and self.greylist.refuses(key):
                return self.greylist.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.active_transactions += 1
            self.peak_transactions = max(self.peak_transactions, self.active_transactions)
        try:
            return await self._data(server, envelope)
        finally:
            with self.lock:
                self.active_transactions -= 1

    def _drop_once(self, rcpt_tos: list[str]) -> bool:
        with self.lock:
            for rcpt in rcpt_tos:
                left = self.drop_after_data_times.get(rcpt.lower(), 0)
                if left:
                    self.drop_after_data_times[rcpt.lower()] = left - 1
                    return True
        return False

    async def _data(self, server: SMTP, envelope: Envelope) -> str:
        delay = max((self.slow_data.get(r.lower(), 0.0) for r in envelope.rcpt_tos), default=0.0)
        if delay or self.data_delay:
            await asyncio.sleep(delay or self.data_delay)
        item = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or b"",
        )
        if any(r.lower() in self.drop_after_data for r in envelope.rcpt_tos) or self._drop_once(
            envelope.rcpt_tos
        ):
            with self.lock:
                self.dropped.append(item)
            server.transport.close()
            return "250 OK"  # never reaches the client: the connection is gone
        with self.lock:
            self.received.append(item)
        hold = max((self.hold_reply.get(r.lower(), 0.0) for r in envelope.rcpt_tos), default=0.0)
        if hold:
            await asyncio.sleep(hold)
        return "250 2.0.0 queued"

    def by_recipient(self) -> dict[str, list[Received]]:
        found: dict[str, list[Received]] = {}
        for item in self.received:
            for rcpt in item.rcpt_tos:
                found.setdefault(rcpt.lower(), []).append(item)
        return found


class SmtpTestServer:
    """Starts on a free loopback port; use as a context manager."""

    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?tls=none"

    def __enter__(self) -> SmtpTestServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
