"""A real DNS server on 127.0.0.1 (UDP and TCP) serving test zones, for the MX checks.

Runs its own asyncio loop in a thread. Each name's behaviour is a `Zone`: MX records, A/AAAA
records, an error code, an extra delay, or silence (never answers). Every answer waits
`latency` seconds first (scheduled, not slept, so thousands of queries wait side by side).
Unknown names get `default` (NXDOMAIN unless told otherwise).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord


@dataclass(frozen=True)
class Zone:
    """What the server answers for one name."""

    mx: tuple[tuple[int, str], ...] = ()
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    #: TXT records (SPF, DKIM, DMARC), one string each
    txt: tuple[str, ...] = ()
    rcode: str = "NOERROR"  # or NXDOMAIN, SERVFAIL
    delay: float = 0.0
    silent: bool = False


#: public (globally routable) addresses: nothing connects to them, DNS only names them
PUBLIC_V4, PUBLIC_V6 = "1.2.3.4", "2a00:1450:4001::1b"
#: the mail hosts' zones: each has a public address
MAIL_HOST = Zone(a=(PUBLIC_V4,))
#: MX records whose hosts have public addresses; the zone itself answers A too, so a server
#: whose `default` is MX_OK resolves any mail host it names
MX_OK = Zone(mx=((10, "mx1.mail.example."), (20, "mx2.mail.example.")), a=(PUBLIC_V4,))
A_ONLY = Zone(a=(PUBLIC_V4,))
AAAA_ONLY = Zone(aaaa=(PUBLIC_V6,))
NULL_MX = Zone(mx=((0, "."),), a=("192.0.2.20",))
NO_RECORDS = Zone()
NXDOMAIN = Zone(rcode="NXDOMAIN")
SERVFAIL = Zone(rcode="SERVFAIL")
SILENT = Zone(silent=True)
#: the zones of the hosts MX_OK names, for any server that serves MX_OK
MAIL_HOSTS = {"mx1.mail.example": MAIL_HOST, "mx2.mail.example": Zone(aaaa=(PUBLIC_V6,))}


def standard_zones(slow_delay: float = 0.3) -> dict[str, Zone]:
    """One name per DNS outcome the checks distinguish."""
    return {
        "mx-ok.example": MX_OK,
        "a-only.example": A_ONLY,
        "aaaa-only.example": AAAA_ONLY,
        "null-mx.example": NULL_MX,
        "no-records.example": NO_RECORDS,
        "nxdomain.example": NXDOMAIN,
        "servfail.example": SERVFAIL,
        "slow.example": Zone(mx=((10, "mx.slow.example."),), delay=slow_delay),
        "silent.example": SILENT,
        # MX answers no server can receive on: the host has no A/AAAA, or does not exist
        "mx-no-address.example": Zone(mx=((10, "bare.mail.example."),)),
        "mx-nxdomain.example": Zone(mx=((10, "gone.mail.example."),)),
        # the most preferred host unusable, the next one fine: valid through the second
        "mx-second.example": Zone(mx=((5, "gone.mail.example."), (10, "mx2.mail.example."))),
        # mail hosts with only private, loopback or link-local addresses
        "mx-private.example": Zone(mx=((10, "private.mail.example."),)),
        "mx-loopback.example": Zone(mx=((10, "loopback.mail.example."),)),
        "a-private.example": Zone(a=("192.168.1.20",), aaaa=("fd00::20",)),
        # a host's A lookup never answered: unknown, not invalid
        "mx-silent-host.example": Zone(mx=((10, "silent.mail.example."),)),
        **MAIL_HOSTS,
        "mx.slow.example": MAIL_HOST,
        "bare.mail.example": NO_RECORDS,
        "gone.mail.example": NXDOMAIN,
        "private.mail.example": Zone(a=("10.1.2.3",), aaaa=("fe80::1",)),
        "loopback.mail.example": Zone(a=("127.0.0.1",), aaaa=("::1",)),
        "silent.mail.example": SILENT,
        # a staging domain under the special-use `.test`, its mail host on the loopback
        "staging.test": Zone(mx=((10, "loopback.mail.example."),)),
        # the demo's domains
        "example.com": MX_OK,
        "example.org": MX_OK,
        "example.net": A_ONLY,
        # IDN: bücher.example in ASCII form
        "xn--bcher-kva.example": MX_OK,
    }


@dataclass
class DnsServer:
    """The running server: `nameserver` is the `host:port` for OUTREACH_DNS_NAMESERVERS."""

    zones: dict[str, Zone]
    latency: float = 0.0
    #: what names outside `zones` get
    default: Zone = NXDOMAIN
    host: str = "127.0.0.1"
    port: int = 0
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def answer(self, data: bytes) -> tuple[bytes | None, float]:
        """The reply to one query packet (None = stay silent) and how long to wait first."""
        request = DNSRecord.parse(data)
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.queries[(name, qtype)] += 1
        zone = self.zones.get(name, self.default)
        if zone.silent:
            return None, 0.0
        reply = request.reply()
        if zone.rcode != "NOERROR":
            reply.header.rcode = getattr(RCODE, zone.rcode)
        elif qtype == "MX":
            for preference, host in zone.mx:
                reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(host, preference), ttl=60))
        elif qtype == "A":
            for ip in zone.a:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        elif qtype == "AAAA":
            for ip in zone.aaaa:
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=60))
        elif qtype == "TXT":
            for text in zone.txt:
                # long values (DKIM keys) are split into 255-byte strings, as DNS requires
                chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply.pack(), self.latency + zone.delay

    def start(self) -> DnsServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._bind())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="test-dns", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test DNS server did not start")
        return self

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                packet, delay = server.answer(data)
                if packet is not None:
                    loop.call_later(delay, self.transport.sendto, packet, addr)  # type: ignore[attr-defined]

        # UDP on a free port, then TCP on the same port (retry if another process holds it).
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((self.host, self.port))
            port = sock.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, self.host, port)
            except OSError:
                sock.close()
                continue
            self._udp, _ = await loop.create_datagram_endpoint(Udp, sock=sock)
            self.port = port
            return
        raise RuntimeError("no free port for the test DNS server")

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                packet, delay = self.answer(await reader.readexactly(length))
                if packet is None:
                    continue
                await asyncio.sleep(delay)
                writer.write(struct.pack("!H", len(packet)) + packet)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        async def close() -> None:
            self._udp.close()
            self._tcp.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None
