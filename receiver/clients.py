"""The receiver's clients, one of each per process, opened and closed with the app."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
import anyio
import anyio.to_thread
import httpx
import requests

from lab.metrics import CALLER_HEADER
from receiver.cpu import Work
from receiver.deadline import WATCHDOG, WatchedAdapter, WatchedTransport
from receiver.metrics import UpstreamCalls
from receiver.settings import AsyncClient, Settings, SyncClient

HTTPX_KEEPALIVE = 20  # httpx.Limits' default max_keepalive_connections, named


def direct_session() -> requests.Session:
    """A requests session that goes straight to upstream, as the receiver's aiohttp and httpx clients do.

    trust_env off: requests would otherwise read the proxy variables and look for a .netrc on
    every call (aiohttp ignores both unless asked; the httpx clients below are told to). Upstream
    is the lab's own service; a proxy that Docker passes to every container must not come between
    them in some modes and not in others. Those lookups are also system calls that let go of the
    GIL, and a thread that lets go waits for it again behind threads that compute (docs/model.md).
    """
    session = requests.Session()
    session.trust_env = False
    return session


class UpstreamError(Exception):
    """An upstream call that did not succeed, with the status the receiver answers."""

    def __init__(self, status: int, detail: str, outcome: str = "error"):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.outcome = outcome


class Threads:
    """threaded mode's pool of RECEIVER_THREADS threads (T), counting the calls it runs and those waiting."""

    def __init__(self, size: int):
        self.size = size
        self.executor = ThreadPoolExecutor(size, thread_name_prefix="requests")
        self.submitted = 0  # calls handed to the pool and not yet done: changed on the event loop only
        self.running = 0  # calls a thread is running: changed by the threads, under the lock
        self._lock = threading.Lock()

    async def run(self, call: Callable[..., None], *args: object) -> None:
        self.submitted += 1
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._counted, call, *args)
        finally:
            self.submitted -= 1

    def _counted(self, call: Callable[..., None], *args: object) -> None:
        with self._lock:
            self.running += 1
        try:
            call(*args)
        finally:
            with self._lock:
                self.running -= 1


class Counted:
    """httpx.AsyncClient's calls in flight, for the pool's busy and waiting counts (httpx shows none of its own)."""

    def __init__(self, limit: int):
        self.limit = limit  # L; 0: none
        self.calls = 0  # changed on the event loop only

    def pool(self) -> tuple[int, int, int]:
        calls, limit = self.calls, self.limit
        return (calls, 0, 0) if not limit else (min(calls, limit), max(0, calls - limit), limit)


@dataclass(frozen=True)
class Clients:
    session: aiohttp.ClientSession  # async, async part of mixed (RECEIVER_ASYNC_CLIENT=aiohttp)
    http: requests.Session  # sync, threaded, def, blocking part of mixed (RECEIVER_SYNC_CLIENT=requests)
    threads: Threads  # threaded
    threadpool: anyio.CapacityLimiter  # def: anyio's default thread limiter, which FastAPI runs def endpoints in
    timeout: float
    work: Work  # RECEIVER_CPU_MS, after each upstream call
    # The calls the modes make (receiver/modes.py): the loop-friendly one and the blocking one,
    # by RECEIVER_ASYNC_CLIENT and RECEIVER_SYNC_CLIENT (ASYNC_CALLS, SYNC_CALLS).
    call_async: Callable[[Clients, str], Awaitable[None]]
    call_sync: Callable[[Clients, str], None]
    # receiver_upstream_call_duration_seconds, which each call is timed into (the app's
    # ReceiverMetrics.calls); None: RECEIVER_METRICS off, not timed.
    calls: UpstreamCalls | None = None
    httpx_async: httpx.AsyncClient | None = None  # RECEIVER_ASYNC_CLIENT=httpx
    httpx_calls: Counted | None = None  # its calls in flight
    httpx_sync: httpx.Client | None = None  # RECEIVER_SYNC_CLIENT=httpx

    def pools(self) -> dict[str, tuple[int, int, int]]:
        """{pool: (busy, waiting, limit)}: threaded mode's threads, aiohttp's connections (limit 0: none),
        and anyio's tokens (def mode's endpoints).

        Read when /metrics is scraped, from another thread: nothing is counted per request.
        aiohttp has no public count of connections in use or calls waiting for one, so its
        connector's own sets are read (copied first: the event loop may change them meanwhile).
        """
        connector = self.session.connector
        in_use = len(getattr(connector, "_acquired", ()))
        waiting = sum(len(waiters) for waiters in list(getattr(connector, "_waiters", {}).values()))
        threads = self.threads
        tokens = self.threadpool.statistics()  # copies its set of borrowers in one C call
        # The async client's connections: aiohttp's connector, or httpx.AsyncClient's calls in flight.
        connections = ("aiohttp", (in_use, waiting, connector.limit if connector is not None else 0)) \
            if self.httpx_calls is None else ("httpx", self.httpx_calls.pool())
        return {
            # Waiting: calls beyond the T threads, as anyio and aiohttp count theirs (past the cap).
            # A call handed over while the pool starts a thread is in neither count for that moment.
            "threads": (threads.running, max(0, threads.submitted - threads.size), threads.size),
            connections[0]: connections[1],
            "anyio": (tokens.borrowed_tokens, tokens.tasks_waiting, int(tokens.total_tokens)),
        }


@asynccontextmanager
async def open_clients(settings: Settings, calls: UpstreamCalls | None = None) -> AsyncIterator[Clients]:
    """The clients for these settings; calls: the histogram they time each upstream call into (None: none)."""
    # No DNS cache: the name server (compose's) is the truth about where upstream is. A cached
    # address outlives a restarted upstream: a new connection to it waits for the kernel to give
    # up on a host that is gone, where a lookup fails (or finds the new one) at once.
    connector = aiohttp.TCPConnector(limit=settings.receiver_pool_limit, use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=settings.receiver_upstream_timeout)
    # Every call names the caller's mode, so upstream can count what each receiver sends it
    # (the compare profile runs four against one upstream). Session headers: no per-call cost.
    caller = {CALLER_HEADER: settings.receiver_mode}
    http = direct_session()
    http.headers.update(caller)
    # pool_block=False is requests' default: more calls than the pool holds open extra
    # connections and drop them afterwards (urllib3 warns "Connection pool is full").
    http.mount("http://", WatchedAdapter(pool_maxsize=settings.receiver_requests_pool))
    threads = Threads(settings.receiver_threads)
    threadpool = anyio.to_thread.current_default_thread_limiter()  # this event loop's
    if settings.receiver_threadpool_tokens is not None:  # else anyio's own default stays
        threadpool.total_tokens = settings.receiver_threadpool_tokens
    work = Work(settings.receiver_cpu_ms, settings.receiver_cpu_processes)
    seconds, limit = settings.receiver_upstream_timeout, settings.receiver_pool_limit
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=caller) as session, \
            AsyncExitStack() as opened:
        try:
            # httpx: the same timeout (per operation: the calls below add the total deadline), L
            # connections for the async client (of which httpx's default 20 kept open: the more it
            # keeps, the more each call's pool checks), RECEIVER_REQUESTS_POOL kept for the sync one.
            httpx_async = httpx_sync = None
            if settings.receiver_async_client == "httpx":
                httpx_async = await opened.enter_async_context(httpx.AsyncClient(
                    timeout=seconds, headers=caller, trust_env=False,
                    limits=httpx.Limits(max_connections=limit or None, max_keepalive_connections=HTTPX_KEEPALIVE)))
            if settings.receiver_sync_client == "httpx":
                httpx_sync = opened.enter_context(httpx.Client(
                    timeout=seconds, headers=caller, trust_env=False, transport=WatchedTransport(httpx.Limits(
                        max_connections=None, max_keepalive_connections=settings.receiver_requests_pool))))
            await work.start()
            yield Clients(session, http, threads, threadpool, seconds, work,
                          ASYNC_CALLS[settings.receiver_async_client], SYNC_CALLS[settings.receiver_sync_client], calls,
                          httpx_async=httpx_async,
                          httpx_calls=Counted(limit) if httpx_async is not None else None, httpx_sync=httpx_sync)
        finally:
            threads.executor.shutdown(wait=False, cancel_futures=True)
            http.close()
            work.close()


def check(status: int, body: bytes) -> None:
    """Map upstream's answer to the receiver's: 4xx passes through, anything else is a 502."""
    if status == 200:
        return
    if 400 <= status < 500:
        raise UpstreamError(status, f"upstream rejected the call: {body.decode(errors='replace')}")
    raise UpstreamError(502, f"upstream answered {status}")


def call_with_requests(clients: Clients, url: str) -> None:
    """One upstream call with requests. Blocks the calling thread until it is done, at most clients.timeout."""
    started = time.perf_counter()
    outcome = "error"
    try:
        with WATCHDOG.call(clients.timeout) as call:  # requests' timeout is per read: the watchdog bounds the call
            try:
                response = clients.http.get(url, timeout=clients.timeout)
            except requests.RequestException as exc:
                failed: requests.RequestException | None = exc
            else:
                failed = None
            # Cut at the deadline, an answer may even look whole: its head, then the end of the stream.
            if call.expired or isinstance(failed, requests.Timeout):
                outcome = "timeout"
                raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout")
            if failed is not None:
                raise UpstreamError(502, f"upstream call failed: {failed}")
        check(response.status_code, response.content)
        outcome = "ok"
    finally:
        if clients.calls is not None:
            clients.calls.labels("requests", outcome).observe(time.perf_counter() - started)


async def call_with_aiohttp(clients: Clients, url: str) -> None:
    """One upstream call with aiohttp. Waits without blocking the event loop."""
    started = time.perf_counter()
    outcome = "error"
    try:
        try:
            async with clients.session.get(url) as response:
                status, body = response.status, await response.read()
        except TimeoutError:
            outcome = "timeout"
            raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(502, f"upstream call failed: {exc}") from None
        check(status, body)
        outcome = "ok"
    finally:
        if clients.calls is not None:
            clients.calls.labels("aiohttp", outcome).observe(time.perf_counter() - started)


def call_with_httpx_sync(clients: Clients, url: str) -> None:
    """One upstream call with httpx.Client. Blocks the calling thread until it is done, at most clients.timeout."""
    assert clients.httpx_sync is not None
    started = time.perf_counter()
    outcome = "error"
    try:
        with WATCHDOG.call(clients.timeout) as call:  # httpx's timeouts are per operation: the watchdog bounds the call
            try:
                response = clients.httpx_sync.get(url)
            except httpx.HTTPError as exc:
                failed: httpx.HTTPError | None = exc
            else:
                failed = None
            if call.expired or isinstance(failed, httpx.TimeoutException):
                outcome = "timeout"
                raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout")
            if failed is not None:
                raise UpstreamError(502, f"upstream call failed: {failed!r}")
        check(response.status_code, response.content)
        outcome = "ok"
    finally:
        if clients.calls is not None:
            clients.calls.labels("httpx.Client", outcome).observe(time.perf_counter() - started)


async def call_with_httpx(clients: Clients, url: str) -> None:
    """One upstream call with httpx.AsyncClient. Waits without blocking the event loop, at most clients.timeout."""
    assert clients.httpx_async is not None and clients.httpx_calls is not None
    started = time.perf_counter()
    outcome = "error"
    counted = clients.httpx_calls
    counted.calls += 1
    try:
        try:
            async with asyncio.timeout(clients.timeout):  # httpx's timeouts are per operation: the total deadline
                response = await clients.httpx_async.get(url)
        except (TimeoutError, httpx.TimeoutException):
            outcome = "timeout"
            raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(502, f"upstream call failed: {exc!r}") from None
        check(response.status_code, response.content)
        outcome = "ok"
    finally:
        counted.calls -= 1
        if clients.calls is not None:
            clients.calls.labels("httpx.AsyncClient", outcome).observe(time.perf_counter() - started)


# The clients a mode's calls go through (RECEIVER_ASYNC_CLIENT, RECEIVER_SYNC_CLIENT): a library, one function.
ASYNC_CALLS: dict[AsyncClient, Callable[[Clients, str], Awaitable[None]]] = {
    "aiohttp": call_with_aiohttp,
    "httpx": call_with_httpx,
}
SYNC_CALLS: dict[SyncClient, Callable[[Clients, str], None]] = {
    "requests": call_with_requests,
    "httpx": call_with_httpx_sync,
}
