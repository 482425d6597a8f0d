"""python -m bench.references.waits_raw: the least a Python server can do for a burst (not part of the lab).

What waits does with no HTTP library at all: an asyncio.Protocol on uvloop that reads each
request's head, waits its ?delay= on the loop and writes the receiver's bytes. It parses only
the request line, so it is no server for anything but the benchmark's sender (one GET at a
time on a connection, no body). What a burst against it takes beyond D is the load
generator's and the kernel's share with the server's own Python cut to the bone: the floor
under the floor (bench/floors.py).
"""

import asyncio
import os
from typing import cast
from urllib.parse import parse_qs, urlsplit

import uvloop

from bench.references import ANSWERED, BACKLOG


def response(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


ANSWER = response("200 OK", ANSWERED)
HEALTHY = response("200 OK", b'{"status": "ok"}')
NOT_FOUND = response("404 Not Found", b'{"error": "not found"}')


class Waits(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport: not an asyncio.Transport subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            target = urlsplit(head.split(b" ", 2)[1].decode("latin-1"))
            if target.path.startswith("/tasks/"):
                delay = float(parse_qs(target.query).get("delay", ["0"])[0])
                asyncio.get_running_loop().call_later(delay, self.answer, ANSWER)
            else:
                self.answer(HEALTHY if target.path == "/healthz" else NOT_FOUND)

    def answer(self, message: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(message)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])
    server = await loop.create_server(Waits, host, port, backlog=BACKLOG)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve())
