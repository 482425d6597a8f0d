"""The receiver's clients, one of each per process, opened and closed with the app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import aiohttp
import requests
from requests.adapters import HTTPAdapter

from receiver.metrics import UPSTREAM_CALLS
from receiver.settings import Settings


class UpstreamError(Exception):
    """An upstream call that did not succeed, with the status the receiver answers."""

    def __init__(self, status: int, detail: str, outcome: str = "error"):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.outcome = outcome


@dataclass(frozen=True)
class Clients:
    session: aiohttp.ClientSession  # async, async part of mixed
    http: requests.Session  # sync, threaded, blocking part of mixed
    threads: ThreadPoolExecutor  # threaded
    timeout: float


@asynccontextmanager
async def open_clients(settings: Settings) -> AsyncIterator[Clients]:
    connector = aiohttp.TCPConnector(limit=settings.receiver_pool_limit)
    timeout = aiohttp.ClientTimeout(total=settings.receiver_upstream_timeout)
    http = requests.Session()
    # pool_block=False is requests' default: more calls than the pool holds open extra
    # connections and drop them afterwards (urllib3 warns "Connection pool is full").
    http.mount("http://", HTTPAdapter(pool_maxsize=settings.receiver_requests_pool))
    threads = ThreadPoolExecutor(settings.receiver_threads, thread_name_prefix="requests")
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        try:
            yield Clients(session, http, threads, settings.receiver_upstream_timeout)
        finally:
            threads.shutdown(wait=False, cancel_futures=True)
            http.close()


@contextmanager
def observed(client: str) -> Iterator[None]:
    """Time one upstream call into receiver_upstream_call_duration_seconds."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except UpstreamError as exc:
        outcome = exc.outcome
        raise
    finally:
        UPSTREAM_CALLS.labels(client, outcome).observe(time.perf_counter() - started)


def check(status: int, body: str) -> None:
    """Map upstream's answer to the receiver's: 4xx passes through, anything else is a 502."""
    if status == 200:
        return
    if 400 <= status < 500:
        raise UpstreamError(status, f"upstream rejected the call: {body}")
    raise UpstreamError(502, f"upstream answered {status}")


def call_with_requests(clients: Clients, url: str) -> None:
    """One upstream call with requests. Blocks the calling thread until it is done."""
    with observed("requests"):
        try:
            response = clients.http.get(url, timeout=clients.timeout)
        except requests.Timeout:
            raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout") from None
        except requests.RequestException as exc:
            raise UpstreamError(502, f"upstream unreachable: {exc}") from None
        check(response.status_code, response.text)


async def call_with_aiohttp(clients: Clients, url: str) -> None:
    """One upstream call with aiohttp. Waits without blocking the event loop."""
    with observed("aiohttp"):
        try:
            async with clients.session.get(url) as response:
                check(response.status, await response.text())
        except TimeoutError:
            raise UpstreamError(504, f"upstream did not answer within {clients.timeout:g}s", "timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(502, f"upstream unreachable: {exc}") from None
