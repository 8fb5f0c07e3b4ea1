"""A minimal, fast SMTP sink for benchmarks: counts messages and discards them.

    python benchmarks/smtp_sink.py PORT [--record FILE] [--delay-ms N]
    (start several on one port: SO_REUSEPORT)

Prints `ready`, then answers every line on stdin with the number of messages received.
Speaks just enough SMTP (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to be a fair, fast peer:
aiosmtpd tops out near 600 messages/s here and would measure itself, not the senders.

`--record FILE` appends one line per message: `<unix time> <delivery id> <recipient>`, the id
from the message's X-Outreach-Delivery header (`-` without one), so a benchmark can count
duplicates and rates after the fact. `--delay-ms N` answers each DATA only after N ms, a peer
whose latency bounds one connection (the case where more workers help).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import TextIO

count = 0
record: TextIO | None = None
delay_s = 0.0

_DELIVERY = re.compile(rb"\r\nX-Outreach-Delivery:\s*(\d+)", re.IGNORECASE)


class SinkProtocol(asyncio.Protocol):
    """One SMTP session; replies to commands, swallows DATA up to CRLF.CRLF."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        self.rcpt = b"-"
        transport.write(b"220 sink ESMTP\r\n")

    def _received(self, message: bytes) -> None:
        global count
        count += 1
        if record is not None:
            found = _DELIVERY.search(message)
            delivery = found.group(1).decode() if found else "-"
            record.write(f"{time.time():.4f} {delivery} {self.rcpt.decode(errors='replace')}\n")
        if delay_s:
            asyncio.get_running_loop().call_later(delay_s, self._reply, b"250 2.0.0 ok\r\n")
        else:
            self.transport.write(b"250 2.0.0 ok\r\n")

    def _reply(self, line: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(line)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                message, self.buffer, self.in_data = (
                    self.buffer[:end],
                    self.buffer[end + 5 :],
                    False,
                )
                self._received(message)
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"DATA":
                self.in_data = True
                # the terminator is searched as CRLF.CRLF: an empty body still ends on it
                self.buffer = b"\r\n" + self.buffer
                self.transport.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:
                if verb == b"RCPT":
                    self.rcpt = line[8:].strip(b" <>") or b"-"
                self.transport.write(b"250 ok\r\n")


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    # reuse_port: several sink processes share the port, so the sink is never the bottleneck
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, reuse_port=True)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        if record is not None:
            record.flush()
        print(count, flush=True)
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--record", help="append `time delivery-id recipient` per message here")
    parser.add_argument("--delay-ms", type=float, default=0, help="answer each DATA after N ms")
    args = parser.parse_args()
    delay_s = args.delay_ms / 1000
    if args.record:
        record = open(args.record, "a", buffering=1 << 16)  # noqa: SIM115 - open for the run
    try:
        asyncio.run(main(args.port))
    finally:
        if record is not None:
            record.close()
