"""A minimal, fast SMTP sink for benchmarks: counts messages and discards them.

    python benchmarks/smtp_sink.py PORT     (start several on one port: SO_REUSEPORT)

Prints `ready`, then answers every line on stdin with the number of messages received.
Speaks just enough SMTP (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to be a fair, fast peer:
aiosmtpd tops out near 600 messages/s here and would measure itself, not the senders.
"""

from __future__ import annotations

import asyncio
import sys

count = 0


class SinkProtocol(asyncio.Protocol):
    """One SMTP session; replies to commands, swallows DATA up to CRLF.CRLF."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        global count
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer, self.in_data = self.buffer[end + 5 :], False
                count += 1
                self.transport.write(b"250 2.0.0 ok\r\n")
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
                self.transport.write(b"250 ok\r\n")


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    # reuse_port: several sink processes share the port, so the sink is never the bottleneck
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, reuse_port=True)
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        print(count, flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
