"""A real IMAP4rev1 server (Twisted's `twisted.mail.imap4`) on 127.0.0.1 with in-memory mailboxes.

    with ImapTestServer(user="unsub", password="s3cret") as server:
        uid = server.append(raw_message_bytes)          # into INBOX, unseen
        server.flags(uid)                               # -> {"\\Seen", ...}
        server.logins                                   # successful LOGINs so far
        server.hold()                                   # new connections get no greeting...
        server.held()                                   # ...(their client ports)...
        server.release()                                # ...until now: a stalled server

Twisted's reactor can run only once per process, so the first server starts it in a daemon
thread and it stays up; each server listens on its own port and `stop()` closes the port and
every connection it accepted. Everything that touches the mailbox runs in the reactor thread
(`blockingCallFromThread`), so the test thread never races the server.

`TlsFront` puts TLS (imaps://) in front of it, with a certificate from
`self_signed_loopback_cert`.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.cred import checkers, portal
from twisted.internet import protocol, reactor
from twisted.internet.threads import blockingCallFromThread
from twisted.mail import imap4
from zope.interface import implementer

#: flags a client may set (PERMANENTFLAGS)
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")

_reactor_started = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _ensure_reactor() -> None:
    """Start the global reactor in a daemon thread, once per process."""
    global _reactor_thread
    with _reactor_started:
        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run,  # type: ignore[attr-defined]
                kwargs={"installSignalHandlers": False},
                name="twisted reactor",
                daemon=True,
            )
            _reactor_thread.start()


def _in_reactor(function: Any, *args: Any) -> Any:
    return blockingCallFromThread(reactor, function, *args)


class _Part:
    """One MIME part seen through Twisted's IMessagePart (for BODY[n], BODYSTRUCTURE)."""

    def __init__(self, message: Message) -> None:
        self.message = message

    def getHeaders(self, negate: bool, *names: bytes | str) -> dict[str, str]:
        wanted = {(n.decode() if isinstance(n, bytes) else n).lower() for n in names}
        found = {}
        for key, value in self.message.items():
            if not names or (key.lower() in wanted) != negate:
                found[key.lower()] = str(value)
        return found

    def getBodyFile(self) -> io.BytesIO:
        raw = self.message.as_bytes()
        _, _, body = raw.partition(b"\n\n")
        return io.BytesIO(body)

    def getSize(self) -> int:
        return len(self.message.as_bytes())

    def isMultipart(self) -> bool:
        return self.message.is_multipart()

    def getSubPart(self, part: int) -> _Part:
        payload = self.message.get_payload()
        assert isinstance(payload, list)
        return _Part(payload[part])


@implementer(imap4.IMessage, imap4.IMessageFile)
class StoredMessage(_Part):
    """A message in a mailbox: its bytes as appended, a UID and flags."""

    def __init__(self, raw: bytes, uid: int, flags: Iterable[str]) -> None:
        super().__init__(message_from_bytes(raw, policy=policy.compat32))
        self.raw = raw
        self.uid = uid
        self.flag_set: set[str] = set(flags)

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return sorted(self.flag_set)

    def getInternalDate(self) -> str:
        return "01-Jan-2026 00:00:00 +0000"

    def getSize(self) -> int:
        return len(self.raw)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.raw)


@implementer(imap4.IMailboxInfo, imap4.IMailbox, imap4.ICloseableMailbox)
class MemoryMailbox:
    """A mailbox held in a list; UIDs grow from 1 and are never reused."""

    def __init__(self, name: str, validity: int) -> None:
        self.name = name
        self.validity = validity
        self.messages: list[StoredMessage] = []
        self.next_uid = 1
        self.listeners: list[Any] = []

    # --- used by the test thread (through _in_reactor) ---------------------------------------

    def append(self, raw: bytes, flags: Iterable[str] = ()) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages.append(StoredMessage(raw, uid, flags))
        for listener in self.listeners:
            listener.newMessages(len(self.messages), None)
        return uid

    def flags_of(self, uid: int) -> set[str]:
        return set(next(m for m in self.messages if m.uid == uid).flag_set)

    # --- IMailboxInfo / IMailbox ------------------------------------------------------------

    def getFlags(self) -> list[str]:
        return list(SYSTEM_FLAGS)

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return self.validity

    def getUIDNext(self) -> int:
        return self.next_uid

    def getUID(self, message: int) -> int:
        return self.messages[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.messages)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return sum("\\Seen" not in m.flag_set for m in self.messages)

    def isWriteable(self) -> bool:
        return True

    def destroy(self) -> None:
        self.messages.clear()

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        return imap4.statusRequestHelper(self, names)

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        self.listeners.remove(listener)

    def addMessage(self, message: Any, flags: Iterable[bytes | str], date: Any = None) -> int:
        names = [f.decode() if isinstance(f, bytes) else f for f in flags]
        return self.append(message.read(), names)

    def expunge(self) -> list[int]:
        gone = [i for i, m in enumerate(self.messages, 1) if "\\Deleted" in m.flag_set]
        self.messages = [m for m in self.messages if "\\Deleted" not in m.flag_set]
        return gone

    def close(self) -> None:
        """Nothing to release: the mailbox outlives the session."""

    def _selected(
        self, messages: imap4.MessageSet, uid: bool
    ) -> Iterator[tuple[int, StoredMessage]]:
        highest = (self.messages[-1].uid if uid else len(self.messages)) if self.messages else 0
        # "*" means the highest number in use; the server's own SEARCH passes a set it resolved
        if not isinstance(messages.last, int):
            messages.last = highest
        for sequence, message in enumerate(self.messages, 1):
            if (message.uid if uid else sequence) in messages:
                yield sequence, message

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, StoredMessage]]:
        return list(self._selected(messages, uid))

    def store(
        self, messages: imap4.MessageSet, flags: list[str], mode: int, uid: bool
    ) -> dict[int, list[str]]:
        changed = {}
        for sequence, message in self._selected(messages, uid):
            if mode == 1:
                message.flag_set |= set(flags)
            elif mode == -1:
                message.flag_set -= set(flags)
            else:
                message.flag_set = set(flags)
            changed[sequence] = message.getFlags()
        return changed


@implementer(imap4.IAccount)
class MemoryAccount(imap4.MemoryAccount):
    def _emptyMailbox(self, name: str, id: int) -> MemoryMailbox:
        return MemoryMailbox(name, validity=id + 1)


@implementer(portal.IRealm)
@dataclass
class _Realm:
    account: MemoryAccount
    logins: list[str] = field(default_factory=list)

    def requestAvatar(self, avatar_id: bytes, mind: Any, *interfaces: Any) -> Any:
        assert imap4.IAccount in interfaces
        self.logins.append(avatar_id.decode())
        return imap4.IAccount, self.account, lambda: None


class _Factory(protocol.ServerFactory):
    def __init__(self, portal_: portal.Portal) -> None:
        self.portal = portal_
        self.connections: list[imap4.IMAP4Server] = []
        #: while True, a new connection is accepted but not greeted (see ImapTestServer.hold)
        self.holding = False
        self.held: list[_TrackedServer] = []

    def buildProtocol(self, addr: Any) -> imap4.IMAP4Server:
        server = _TrackedServer()
        server.portal = self.portal
        server.factory = self
        return server


class _TrackedServer(imap4.IMAP4Server):
    """Remembers its connection so `stop()` can close it; while its factory is holding, it
    says nothing until greeted (`greet`)."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        if self.factory.holding:
            self.factory.held.append(self)
            return
        super().connectionMade()

    def greet(self) -> None:
        """What `connectionMade` would have done: the greeting a client waits for."""
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        if self in self.factory.connections:
            self.factory.connections.remove(self)
        if self in self.factory.held:  # the client gave up waiting
            self.factory.held.remove(self)
        super().connectionLost(reason)


class ImapTestServer:
    """One account (`user`/`password`) with an INBOX, served on 127.0.0.1:port (`port=0`: a
    free one; give the port of a stopped server to bring "the same server" back)."""

    def __init__(
        self, *, user: str = "unsub", password: str = "imap-secret", port: int = 0
    ) -> None:
        self.user, self.password, self.requested_port = user, password, port
        self.account = MemoryAccount(user)
        self.account.addMailbox("INBOX")
        self.realm = _Realm(self.account)
        # the server hands credentials over as bytes
        checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser(user.encode(), password.encode())
        self.factory = _Factory(portal.Portal(self.realm, [checker]))
        self._port: Any = None

    @property
    def port(self) -> int:
        return int(self._port.getHost().port)

    @property
    def logins(self) -> list[str]:
        return list(self.realm.logins)

    def url(self, *, password: str | None = None, folder: str = "INBOX") -> str:
        """The `imap://user:password@127.0.0.1:port/folder` URL of this server."""
        secret = self.password if password is None else password
        credentials = f"{quote(self.user, safe='')}:{quote(secret, safe='')}"
        return f"imap://{credentials}@127.0.0.1:{self.port}/{quote(folder)}"

    def start(self) -> ImapTestServer:
        _ensure_reactor()
        self._port = _in_reactor(
            lambda: reactor.listenTCP(self.requested_port, self.factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        )
        return self

    def stop(self) -> None:
        """Close the port and every connection (again: nothing to do)."""
        if self._port is None:
            return

        def close() -> Any:
            for connection in list(self.factory.connections):
                connection.transport.abortConnection()
            return self._port.stopListening()

        _in_reactor(close)
        self._port = None

    def hold(self) -> None:
        """From now on, accept connections but send no greeting: a client waits as on a server
        too slow to answer, until `release()` (or its own timeout)."""

        def start_holding() -> None:
            self.factory.holding = True

        _in_reactor(start_holding)

    def held(self) -> list[int]:
        """The client ports of the connections waiting for their greeting, oldest first."""
        return list(_in_reactor(lambda: [c.transport.getPeer().port for c in self.factory.held]))

    def connected(self) -> int:
        """How many client connections are open now (held or not)."""
        return int(_in_reactor(lambda: len(self.factory.connections)))

    def release(self) -> None:
        """Greet every held connection and stop holding: the server answers again."""

        def greet_all() -> None:
            self.factory.holding = False
            waiting, self.factory.held = self.factory.held, []
            for connection in waiting:
                connection.greet()

        _in_reactor(greet_all)

    def mailbox(self, name: str = "INBOX") -> MemoryMailbox:
        return self.account.mailboxes[name.upper()]

    def append(self, raw: bytes, *, folder: str = "INBOX", flags: Iterable[str] = ()) -> int:
        """Deliver a message (unseen unless `flags` says otherwise); its UID."""
        return int(_in_reactor(self.mailbox(folder).append, raw, list(flags)))

    def flags(self, uid: int, *, folder: str = "INBOX") -> set[str]:
        return set(_in_reactor(self.mailbox(folder).flags_of, uid))

    def uids(self, *, folder: str = "INBOX") -> list[int]:
        return list(_in_reactor(lambda: [m.uid for m in self.mailbox(folder).messages]))

    def __enter__(self) -> ImapTestServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed_loopback_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outreach test IMAP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "imap-cert.pem", folder / "imap-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsFront:
    """TLS on 127.0.0.1:port in front of a plain server (as stunnel does), with the stdlib's
    `ssl`: Twisted's own TLS needs pyOpenSSL, which the project does not otherwise use.

    Each accepted connection is handshaken, then its bytes are copied both ways to
    127.0.0.1:backend_port by two threads until either side closes.
    """

    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        self.backend_port = backend_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="tls front", daemon=True)

    def _accept(self) -> None:
        # a closed listener does not wake a blocked accept(): poll, so stop() is prompt
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(None)
            self.sockets.append(raw)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):  # a client that refuses our certificate: its side shows it
            raw.close()
            return
        backend = socket.create_connection(("127.0.0.1", self.backend_port))
        self.sockets += [client, backend]
        threading.Thread(target=self._pump, args=(backend, client), daemon=True).start()
        self._pump(client, backend)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:  # the other direction closed both sockets
            pass
        finally:
            for sock in (source, target):
                sock.close()

    def start(self) -> TlsFront:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.listener.close()
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> TlsFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
