"""SMTP engine (aiosmtplib): a small pool of reused connections.

The transaction is sent step by step (MAIL, RCPT, DATA) so that a failure can be classed by
where it happened: a drop before DATA means the message was not sent (reconnect and go on), a
drop or timeout during DATA means it may have been (ambiguous, never resent).

Logging in costs the account at most one attempt per mechanism, and a wrong password one
attempt in all: the pool's connections log in one at a time until a login has worked, the
next mechanism is tried only when the server does not take the last one (`auth_verdict`), and
once the server refused the credentials no connection of this sender logs in again: each
fails at once with that error (the run then pauses, saying to correct the password).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
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
from outreach_core.adapters.senders.smtp_tls import (
    TlsSetupError,
    client_context,
    describe_tls_failure,
)
from outreach_core.domain.message import Outgoing
from outreach_core.domain.smtp_security import (
    AuthVerdict,
    TlsMode,
    auth_failure_advice,
    auth_verdict,
)
from outreach_core.errors import SendError, SendErrorKind

__all__ = ["SmtpConfig", "SmtpSender", "TlsMode", "reply_kind"]

#: RFC 5321 4.5.3.1.10: a 552 to RCPT ("too many recipients") is a legacy mistake for 452
_TRANSIENT_5XX_AT_RCPT = frozenset({552})
#: how a certificate refusal says to trust the server
TRUST_HINT = "add ?cafile=/path/to/ca.pem to the engine URL"


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect. `password` is never printed."""

    host: str
    port: int
    tls: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    messages_per_connection: int = 100
    #: a PEM file whose certificates alone are trusted for this engine (private CA)
    cafile: str | None = None

    @property
    def where(self) -> str:
        return f"smtp {self.host}:{self.port}"


@dataclass
class _AuthGate:
    """What the connections of one sender share about logging in."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: a login worked: the other connections may log in side by side
    proven: bool = False
    #: the server refused the credentials: nobody logs in again
    failure: SendError | None = None

    def refused(self) -> SendError | None:
        failure = self.failure
        if failure is None:
            return None
        return SendError(str(failure), kind=failure.kind, code=failure.code)


def reply_kind(code: int, *, stage: str) -> SendErrorKind:
    """Class a server reply: 4xx transient, 5xx permanent (with RFC 5321's one exception);
    530 (STARTTLS or a login required first: RFC 3207, 4954) is about the engine, not the
    recipient, so it takes the engine out instead of failing every recipient."""
    if code == 530:
        return SendErrorKind.ENGINE
    if 400 <= code < 500:
        return SendErrorKind.TRANSIENT
    if stage == "rcpt" and code in _TRANSIENT_5XX_AT_RCPT:
        return SendErrorKind.TRANSIENT
    return SendErrorKind.PERMANENT


class _Connection:
    """One SMTP session, opened on first use and after a drop or the per-connection cap."""

    def __init__(self, config: SmtpConfig, gate: _AuthGate, context: ssl.SSLContext | None) -> None:
        self.config = config
        self.gate = gate
        self.context = context
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
        gate = self.gate
        refused = gate.refused()
        if refused is not None:
            raise refused
        if gate.proven or not self.config.username:
            client = await self._connect()
        else:
            async with gate.lock:  # the first login: one connection tries, the others wait
                refused = gate.refused()
                if refused is not None:
                    raise refused
                client = await self._connect()
                gate.proven = True
        self.client = client
        self.sent_on_connection = 0
        return client

    async def _connect(self) -> aiosmtplib.SMTP:
        """A connected session, TLS as configured, logged in when there is a user."""
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.tls == TlsMode.SSL,
            start_tls=config.tls == TlsMode.STARTTLS,
            tls_context=self.context,
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
            if config.username:
                await self._login(client)
        except SendError:
            client.close()
            raise
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            why = describe_tls_failure(exc, trust_hint=TRUST_HINT) or _describe(exc)
            raise SendError(
                f"{config.where}: cannot connect: {why}", kind=SendErrorKind.ENGINE
            ) from None
        return client

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        """AUTH with the best mechanism both sides know; the next one only when the server
        does not take that one. A refusal of the credentials ends it and closes the gate."""
        config = self.config
        assert config.username is not None
        if client.last_ehlo_response is None:
            await client.ehlo()
        if not client.supports_extension("auth"):
            where = " before TLS; use tls=starttls or ssl" if config.tls == TlsMode.NONE else ""
            raise SendError(
                f"{config.where}: the server offers no login (AUTH){where}",
                kind=SendErrorKind.ENGINE,
            )
        mechanisms = client.supported_auth_methods
        if not mechanisms:
            offered = " ".join(client.server_auth_methods).upper()[:80]
            raise SendError(
                f"{config.where}: the server offers login mechanisms ({offered}) of which "
                "none is supported here (CRAM-MD5, PLAIN, LOGIN)",
                kind=SendErrorKind.ENGINE,
            )
        refusal: aiosmtplib.SMTPAuthenticationError | None = None
        verdict = AuthVerdict.REFUSED
        for name in mechanisms:
            method = getattr(client, f"auth_{name.replace('-', '')}")
            try:
                await method(config.username, config.password or "")
                return
            except aiosmtplib.SMTPAuthenticationError as exc:
                refusal, verdict = exc, auth_verdict(exc.code)
            if verdict is not AuthVerdict.NEXT_MECHANISM:
                break
        assert refusal is not None
        said = " ".join(refusal.message.split())[:160]
        failure = SendError(
            f"{config.where}: authentication failed ({refusal.code}): "
            f"{auth_failure_advice(verdict)} [server: {said}]",
            kind=SendErrorKind.ENGINE,
            code=refusal.code,
        )
        self.gate.failure = failure
        raise failure

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
    """A refused or dropped connection is tried again; a TLS failure (an untrusted
    certificate, a wrong port for the mode) would only fail the same way."""
    if describe_tls_failure(exc, trust_hint="") is not None:
        return False
    return isinstance(
        exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


class SmtpSender:
    """Up to `pool_size` sessions, each used by one send at a time."""

    def __init__(self, config: SmtpConfig, *, pool_size: int = 1) -> None:
        self.config = config
        context = None
        if config.tls != TlsMode.NONE:
            try:
                context = client_context(config.cafile, option="the engine URL's cafile")
            except TlsSetupError as exc:
                raise SendError(f"{config.where}: {exc}", kind=SendErrorKind.ENGINE) from None
        gate = _AuthGate()
        self._connections = [_Connection(config, gate, context) for _ in range(max(1, pool_size))]
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
