"""A TCP proxy in front of upstream that breaks each connection the way its fault says.

Faults (FAULTS), applied to every connection the proxy accepts, each from the request on:
  pass     forward both ways: a transparent proxy
  reset    read the request, then reset the connection (RST, no answer)
  garbage  read the request, answer bytes that are not HTTP, close
  truncate forward to upstream, pass on its answer without the last bytes of the body, close
  hang     read the request, never answer, keep the connection open
  trickle  forward to upstream, pass on its answer one byte every TRICKLE seconds

Tests run it in-process (`with FaultProxy(upstream_url, "reset") as proxy: ...proxy.url`);
`python -m tools.fault_proxy --upstream URL --fault trickle [--port P]` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Literal, get_args
from urllib.parse import urlsplit

Fault = Literal["pass", "reset", "garbage", "truncate", "hang", "trickle"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
TRICKLE = 0.2  # seconds between two bytes of a trickled answer
READ_LIMIT = 1 << 20


async def read_answer(upstream: asyncio.StreamReader) -> bytes:
    """One whole HTTP answer (head and a Content-Length body) from upstream."""
    head = await upstream.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await upstream.readexactly(length)


class FaultProxy:
    """The proxy, serving from a thread of its own on a free loopback port."""

    def __init__(self, upstream_url: str, fault: Fault = "pass", trickle: float = TRICKLE):
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, got {fault!r}")
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.fault = fault
        self.trickle = trickle
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.handlers: dict[Fault, Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]] = {
            "pass": self._pass,
            "reset": self._reset,
            "garbage": self._garbage,
            "truncate": self._truncate,
            "hang": self._hang,
            "trickle": self._trickle,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the faults -------------------------------------------------------------------

    async def _pass(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=READ_LIMIT)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
            sink.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
        writer.transport.abort()

    async def _garbage(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    async def _forwarded(self, reader: asyncio.StreamReader) -> bytes:
        """Read one request, send it upstream, and return upstream's whole answer."""
        request = await reader.readuntil(b"\r\n\r\n")
        up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=READ_LIMIT)
        try:
            up_writer.write(request)
            await up_writer.drain()
            return await read_answer(up_reader)
        finally:
            up_writer.close()

    async def _truncate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = await self._forwarded(reader)
        writer.write(answer[:-3])  # Content-Length promises 3 bytes more than come
        await writer.drain()

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        assert self._stop is not None
        await self._stop.wait()

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = await self._forwarded(reader)
        assert self._stop is not None
        for i in range(len(answer)):
            writer.write(answer[i:i + 1])
            await writer.drain()
            if self._stop.is_set():
                return
            await asyncio.sleep(self.trickle)

    # --- serving ----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handlers[self.fault](reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass  # the client or upstream went away: nothing to pass on
        except asyncio.CancelledError:
            pass  # the proxy is stopping: this connection ends with it
        finally:
            writer.close()

    async def serve(self, port: int = 0) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", port, limit=READ_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.fault_proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="upstream's URL, e.g. http://127.0.0.1:8001")
    parser.add_argument("--fault", choices=FAULTS, default="pass")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (loopback); 0: a free one")
    parser.add_argument("--trickle", type=float, default=TRICKLE, help="seconds between bytes (fault trickle)")
    args = parser.parse_args()
    proxy = FaultProxy(args.upstream, args.fault, args.trickle)

    async def run() -> None:
        task = asyncio.create_task(proxy.serve(args.port))
        await asyncio.to_thread(proxy._ready.wait)
        print(f"fault proxy: {proxy.url} -> {args.upstream}, fault={args.fault}", flush=True)
        await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
