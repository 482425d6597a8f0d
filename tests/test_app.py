"""The receiver's HTTP surface in-process: its app through httpx's ASGI transport, no server process.

The upstream it calls is upstream's own aiohttp app, served on a loopback port in this test's
event loop (aiohttp's TestServer). Only the modes that leave the loop free can be tested so:
sync and mixed block the loop, and with it the upstream that should answer them (a deadlock
here; tests/test_modes.py runs them as processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer
from fastapi import FastAPI

from lab import SEED_BODY
from receiver.app import create_app as create_receiver
from receiver.settings import Settings
from tools.processes import free_port
from upstream.app import create_app as create_upstream
from upstream.settings import Settings as UpstreamSettings

TIMEOUT = 10.0  # seconds any one test may take: each answers in well under one


def run(test: Callable[[], Awaitable[None]]) -> None:
    """One test's coroutine, in an event loop of its own, bounded in time."""
    asyncio.run(asyncio.wait_for(test(), TIMEOUT))


def receiver_settings(upstream_url: str, **knobs: Any) -> Settings:
    # Explicit values win over the environment; no port is bound (no server here).
    return Settings(port=free_port(), metrics_port=free_port(), upstream_url=upstream_url, **knobs)


def receiver_app(upstream_url: str, **knobs: Any) -> FastAPI:
    """The receiver's app, made before any event loop runs, as `python -m receiver` makes it.

    (With RECEIVER_THREADPOOL_TOKENS unset, the settings read anyio's default with anyio.run,
    which cannot run inside a running loop.)
    """
    return create_receiver(receiver_settings(upstream_url, **knobs))


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the receiver's app, its lifespan run around it (the clients open, the probe runs)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            yield client


class Upstream:
    """upstream's app, served on a free loopback port in the test's loop while `async with up.serving()`."""

    def __init__(self, **knobs: Any):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_upstream(UpstreamSettings(port=self.port, metrics_port=free_port(), **knobs))

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        async with TestServer(self.app, host="127.0.0.1", port=self.port):
            yield


def nobody() -> str:
    """A loopback URL nothing listens on: upstream unreachable."""
    return f"http://127.0.0.1:{free_port()}"


def test_healthz_answers_ok():
    app = receiver_app(nobody())

    async def test() -> None:
        async with client_of(app) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    run(test)


def test_info_says_the_settings_and_null_for_an_unreachable_upstream():
    settings = receiver_settings(nobody(), receiver_mode="threaded", receiver_threads=7)
    app = create_receiver(settings)

    async def test() -> None:
        async with client_of(app) as client:
            response = await client.get("/info")
        assert response.status_code == 200
        info = response.json()
        assert set(info) == {*settings.info(), *settings.knobs(), "upstream"}
        assert info["upstream"] is None
        assert (info["mode"], info["threads"], info["server"], info["workers"]) == ("threaded", 7, "uvicorn", 1)
        assert info["upstream_url"] == settings.upstream_base

    run(test)


def test_info_includes_upstreams_own_settings_when_it_answers():
    up = Upstream(upstream_delay=0.0, upstream_max_delay=30.0)
    app = receiver_app(up.url, receiver_mode="async")

    async def test() -> None:
        async with up.serving(), client_of(app) as client:
            response = await client.get("/info")
        assert response.status_code == 200
        assert response.json()["upstream"] == {"delay": 0.0, "jitter": 0.0, "error_rate": 0.0, "max_delay": 30.0}

    run(test)


@pytest.mark.parametrize(
    "path",
    [
        "/tasks/bad.name",  # outside [A-Za-z0-9_-]
        "/tasks/" + "x" * 65,  # longer than 64
        "/tasks/task1?delay=-1",  # a negative delay
        "/tasks/task1?delay=nan",  # not a finite number
        "/tasks/task1?delay=soon",  # not a number
    ],
)
def test_a_bad_task_name_or_delay_is_refused_with_422_before_any_upstream_call(path):
    app = receiver_app(nobody(), receiver_mode="async")  # a call to upstream would answer 502, not 422

    async def test() -> None:
        async with client_of(app) as client:
            response = await client.get(path)
        assert response.status_code == 422, response.text
        assert "detail" in response.json()

    run(test)


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_tasks_calls_upstream_and_answers_the_seed_body(mode):
    up = Upstream(upstream_delay=0.0)
    app = receiver_app(up.url, receiver_mode=mode)

    async def test() -> None:
        async with up.serving(), client_of(app) as client:
            answers = await asyncio.gather(*(client.get(f"/tasks/task{i}") for i in range(3)))
            answers.append(await client.get("/tasks/task9", params={"delay": "0.01"}))
        for response in answers:
            assert response.status_code == 200
            assert response.content == SEED_BODY
            assert response.headers["content-type"] == "application/json"

    run(test)


def test_tasks_answers_502_when_upstream_is_unreachable():
    app = receiver_app(nobody(), receiver_mode="async")

    async def test() -> None:
        async with client_of(app) as client:
            response = await client.get("/tasks/task1")
        assert response.status_code == 502
        assert set(response.json()) == {"error"}

    run(test)


def test_tasks_passes_upstreams_400_through_for_a_delay_above_its_max():
    up = Upstream(upstream_delay=0.0, upstream_max_delay=1.0)
    app = receiver_app(up.url, receiver_mode="async")

    async def test() -> None:
        async with up.serving(), client_of(app) as client:
            response = await client.get("/tasks/task1", params={"delay": "5"})
        assert response.status_code == 400
        assert "delay must be between 0 and 1 seconds" in response.json()["error"]

    run(test)
