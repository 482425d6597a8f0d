"""The five ways the receiver calls upstream. RECEIVER_MODE picks one of HANDLERS.

A mode decides where its calls run; the client library each call goes through is the
receiver's other knob (RECEIVER_ASYNC_CLIENT: aiohttp or httpx.AsyncClient;
RECEIVER_SYNC_CLIENT: requests or httpx.Client; receiver/clients.py's two tables). Each then
does its request's work (RECEIVER_CPU_MS, receiver/cpu.py; none by default) where it runs:
on the event loop, or in the thread that made the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from lab.model import Mode
from receiver.clients import Clients


async def sync(clients: Clients, url: str) -> None:
    # Deliberately blocking: requests (or httpx.Client) inside async def holds the event loop
    # for the whole call. Nothing else runs meanwhile: other requests are not even read (seed
    # experiment 1).
    clients.call_sync(clients, url)
    await clients.work.on_loop()


async def async_(clients: Clients, url: str) -> None:
    # aiohttp (or httpx.AsyncClient) waits without blocking: other requests go on meanwhile
    # (seed experiment 2).
    await clients.call_async(clients, url)
    await clients.work.on_loop()


async def mixed(clients: Clients, url: str) -> None:
    # The seed's unwritten case: one aiohttp call, then one requests call.
    await clients.call_async(clients, url)
    # Deliberately blocking, as in sync: this one call is enough to serialize the service.
    clients.call_sync(clients, url)
    await clients.work.on_loop()


async def threaded(clients: Clients, url: str) -> None:
    # Keeps the sync library but runs it in a worker thread: the loop stays free, and at
    # most RECEIVER_THREADS calls run at once.
    await clients.threads.run(call_then_work, clients, url)


def def_(clients: Clients, url: str) -> None:
    # Not async at all: FastAPI runs a plain def endpoint in anyio's thread pool (K tokens,
    # 40 by default), so this blocking call holds one of its threads, never the loop. The fix
    # most FastAPI users reach for first; at most K calls run at once.
    call_then_work(clients, url)


def call_then_work(clients: Clients, url: str) -> None:
    """threaded's and def's request, in its thread: the call, then the work, both in this thread."""
    clients.call_sync(clients, url)
    clients.work.in_thread()


# A coroutine function runs on the event loop (an async def endpoint); a plain function in
# anyio's thread pool (a def endpoint): receiver/app.py registers the route accordingly.
Handler = Callable[[Clients, str], Awaitable[None]] | Callable[[Clients, str], None]

HANDLERS: dict[Mode, Handler] = {
    "sync": sync,
    "async": async_,
    "mixed": mixed,
    "threaded": threaded,
    "def": def_,
}
