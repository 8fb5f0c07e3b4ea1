"""SMTP engine (aiosmtplib): a small pool of reused connections.

The transaction is sent step by step (MAIL, RCPT, DATA) so that a failure can be classed by
where it happened: a drop before DATA means the message was not sent (reconnect and go on), a
drop or timeout during DATA means it may have been (ambiguous, never resent).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from outreach_core.adapters.senders.base import SendResult
from outreach_core.domain.message import Outgoing
from outreach_core.errors import SendError, SendErrorKind

#: RFC 5321 4.5.3.1.10: a 552 to RCPT ("too many recipients") is a legacy mistake for 452
_TRANSIENT_5XX_AT_RCPT = frozenset({552})


class TlsMode:
    """How the connection is secured; always explicit, never "upgrade if offered"."""

    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"
    ALL = (STARTTLS, SSL, NONE)


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect. `password` is never printed."""

    host: str
    port: int
    tls: str
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    messages_per_connection: int = 100

    @property
    def where(self) -> str:
        return f"smtp {self.host}:{self.port}"


def reply_kind(code: int, *, stage: str) -> SendErrorKind:
    """Class a server reply: 4xx transient, 5xx permanent (with RFC 5321's one exception)."""
    if 400 <= code < 500:
        return SendErrorKind.TRANSIENT
    if stage == "rcpt" and code in _TRANSIENT_5XX_AT_RCPT:
        return SendErrorKind.TRANSIENT
    return SendErrorKind.PERMANENT


class _Connection:
    """One SMTP session, opened on first use and after a drop or the per-connection cap."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.client: aiosmtplib.SMTP | None = None
        self.sent_on_connection = 0

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def open(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected:
            return self.client
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == TlsMode.SSL,
            start_tls=config.tls == TlsMode.STARTTLS,
            username=config.username,
            password=config.password,
            timeout=config.timeout,
        )
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_worth_reconnecting),
                wait=wait_random_exponential(multiplier=0.2, max=2),
                stop=stop_after_attempt(3),
                reraise=True,
            ):
                with attempt:
                    await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SendError(
                f"{config.where}: authentication failed ({exc.code})",
                kind=SendErrorKind.ENGINE,
                code=exc.code,
            ) from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise SendError(
                f"{config.where}: cannot connect: {_describe(exc)}", kind=SendErrorKind.ENGINE
            ) from None
        self.client = client
        self.sent_on_connection = 0
        return client

    async def send(self, outgoing: Outgoing) -> SendResult:
        if self.sent_on_connection >= self.config.messages_per_connection:
            await self.close()
        # A reused session may have been dropped by the server while idle: that shows up at
        # MAIL or RCPT, before anything was sent, so one reconnect is safe and not a retry.
        for reconnects_left in (1, 0):
            client = await self.open()
            try:
                await self._envelope(client, outgoing)
                break
            except aiosmtplib.SMTPServerDisconnected:
                self.client = None
                if not reconnects_left:
                    raise SendError(
                        f"{self.config.where}: connection dropped before DATA",
                        kind=SendErrorKind.TRANSIENT,
                    ) from None
        try:
            response = await client.data(outgoing.data)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise SendError(
                f"{self.config.where}: DATA refused: {exc.code} {exc.message}",
                kind=reply_kind(exc.code, stage="data"),
                code=exc.code,
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.client = None
            raise SendError(
                f"{self.config.where}: {_describe(exc)} during DATA; the message may have "
                "been delivered",
                kind=SendErrorKind.AMBIGUOUS,
            ) from None
        self.sent_on_connection += 1
        return SendResult(
            message_id=outgoing.message_id, response=f"{response.code} {response.message}"
        )

    async def _envelope(self, client: aiosmtplib.SMTP, outgoing: Outgoing) -> None:
        utf8 = outgoing.needs_smtputf8
        encoding = "utf-8" if utf8 else "ascii"
        options = ["SMTPUTF8"] if utf8 else []
        stage = "mail"
        try:
            await client.mail(outgoing.envelope_from, options=options, encoding=encoding)
            stage = "rcpt"
            await client.rcpt(outgoing.recipient, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise SendError(
                f"{self.config.where}: {stage.upper()} refused: {exc.code} {exc.message}",
                kind=reply_kind(exc.code, stage=stage),
                code=exc.code,
            ) from None
        except (aiosmtplib.SMTPTimeoutError, OSError) as exc:
            self.client = None
            raise SendError(
                f"{self.config.where}: {_describe(exc)} at {stage.upper()}",
                kind=SendErrorKind.TRANSIENT,
            ) from None

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.client = None


def _worth_reconnecting(exc: BaseException) -> bool:
    return not isinstance(exc, aiosmtplib.SMTPAuthenticationError) and isinstance(
        exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


class SmtpSender:
    """Up to `pool_size` sessions, each used by one send at a time."""

    def __init__(self, config: SmtpConfig, *, pool_size: int = 1) -> None:
        self.config = config
        self._connections = [_Connection(config) for _ in range(max(1, pool_size))]
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()

    async def __aenter__(self) -> Self:
        for connection in self._connections:
            self._idle.put_nowait(connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await asyncio.gather(*(c.close() for c in self._connections))

    async def check(self) -> str:
        """Connect (TLS and AUTH as configured) and answer a NOOP."""
        connection = await self._idle.get()
        try:
            client = await connection.open()
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError) as exc:
                connection.client = None
                raise SendError(
                    f"{self.config.where}: NOOP failed: {_describe(exc)}",
                    kind=SendErrorKind.ENGINE,
                ) from None
        finally:
            self._idle.put_nowait(connection)
        return f"{self.config.where}: connected ({self.config.tls}), server answers"

    async def send(self, outgoing: Outgoing) -> SendResult:
        connection = await self._idle.get()
        try:
            return await connection.send(outgoing)
        finally:
            self._idle.put_nowait(connection)
