"""A total deadline for requests' calls: requests' own timeout bounds each read, not the call.

An upstream that trickles its answer (a byte every second, say) never trips a per-read
timeout, and would hold a sync receiver's loop for as long as it likes. So each call made
with `requests` registers the socket it uses; one watchdog thread per process shuts that
socket down when the call's deadline passes, which ends the blocked read at once. The call
then fails, and the caller, seeing the deadline passed, answers 504 like a read timeout.
aiohttp needs none of this: its ClientTimeout(total=...) is a total deadline already.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

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
        """Watch the requests call made inside this block, on this thread, for `timeout` seconds."""
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
