"""A total deadline for requests' calls: requests' own timeout bounds each read, not the call.

An upstream that trickles its answer (a byte every second, say) never trips a per-read
timeout, and would hold a sync receiver's loop for as long as it likes. So each call made
with `requests` registers the socket it uses; one watchdog thread per process shuts that
socket down when the call's deadline passes, which ends the blocked read at once. The call
then fails, and the caller, seeing the deadline passed, answers 504 like a read timeout.
httpx.Client's timeouts are per operation too, and get the same watchdog (WatchedTransport:
its sockets are handed over as they are read and written). aiohttp needs none of this: its
ClientTimeout(total=...) is a total deadline already, and httpx.AsyncClient's call runs
under asyncio.timeout (receiver/clients.py).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpcore
import httpx
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool


class Call:
    """One call's deadline and, once it has one, its socket."""

    __slots__ = ("deadline", "sock", "expired", "done", "_lock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.expired = False
        self.done = False
        self._lock = threading.Lock()

    def use(self, sock: socket.socket | None) -> None:
        """The call sends on this socket; one that comes after the deadline is shut down at once."""
        with self._lock:
            self.sock = sock
            if self.expired:
                self._shut()

    def finish(self) -> None:
        """The call is over: its connection goes back to the pool, never to be shut by this call."""
        with self._lock:
            self.sock = None
            self.done = True

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self.sock is not None:
            with suppress(OSError):  # closed already
                self.sock.shutdown(socket.SHUT_RDWR)  # the blocked recv() returns at once; urllib3 drops the connection


class Watchdog:
    """Expires each watched call when its deadline passes, from a daemon thread of its own."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Call]] = []  # a heap by deadline
        self._order = itertools.count()  # ties in the heap never compare Calls
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._local = threading.local()  # the call this thread is making, for WatchedConnection

    @contextmanager
    def call(self, timeout: float) -> Iterator[Call]:
        """Watch the call (requests' or httpx.Client's) made inside this block, on this thread, for `timeout` s."""
        watched = Call(time.monotonic() + timeout)
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="requests-deadline", daemon=True)
                self._thread.start()
            heapq.heappush(self._due, (watched.deadline, next(self._order), watched))
            if self._due[0][2] is watched:
                self._wake.notify()
        self._local.call = watched
        try:
            yield watched
        finally:
            self._local.call = None
            watched.finish()

    def current(self) -> Call | None:
        """The call this thread is making (inside call()), if any."""
        return getattr(self._local, "call", None)

    def _run(self) -> None:
        # It sleeps until the first deadline of a call not known to be over. Calls that are over
        # leave the heap when they reach its top, without waking the thread at their own deadlines.
        with self._wake:
            while True:
                now = time.monotonic()
                while self._due and (self._due[0][2].done or self._due[0][0] <= now):
                    watched = heapq.heappop(self._due)[2]
                    if not watched.done:
                        watched.expire()
                self._wake.wait(self._due[0][0] - now if self._due else None)


WATCHDOG = Watchdog()


class WatchedConnection(HTTPConnection):
    """urllib3's connection, handing its socket to the call in progress on this thread."""

    def request(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().request(*args, **kwargs)
        call = WATCHDOG.current()
        if call is not None:
            call.use(self.sock)


class WatchedPool(HTTPConnectionPool):
    ConnectionCls = WatchedConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter for http:// whose connections the watchdog can cut at a call's deadline."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme, "http": WatchedPool}


class WatchedStream(httpcore.NetworkStream):
    """httpcore's socket stream, handing its socket to the call in progress on this thread at each read and write.

    A pooled connection serves one call after another: whichever call uses it now is the one
    whose deadline may cut it.
    """

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream
        self._sock = stream.get_extra_info("socket")

    def _watch(self) -> None:
        call = WATCHDOG.current()
        if call is not None:
            call.use(self._sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._watch()
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._watch()
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class WatchedBackend(httpcore.SyncBackend):
    """httpcore's network backend for sockets, each in a WatchedStream (http:// only: no start_tls)."""

    def connect_tcp(self, *args, **kwargs) -> httpcore.NetworkStream:  # type: ignore[no-untyped-def]
        return WatchedStream(super().connect_tcp(*args, **kwargs))


class WatchedTransport(httpx.HTTPTransport):
    """httpx.Client's transport for http:// whose connections the watchdog can cut at a call's deadline.

    httpx has no way to name a network backend but its transport's pool, which is rebuilt here
    with the same limits and WatchedBackend (tests/test_faults.py's trickle holds it to that).
    """

    def __init__(self, limits: httpx.Limits):
        super().__init__(limits=limits)
        self._pool = httpcore.ConnectionPool(max_connections=limits.max_connections,
                                             max_keepalive_connections=limits.max_keepalive_connections,
                                             keepalive_expiry=limits.keepalive_expiry, network_backend=WatchedBackend())
