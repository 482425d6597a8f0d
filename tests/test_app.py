"""The receiver's HTTP surface in-process: its app through httpx's ASGI transport, no server process.

The upstream it calls is upstream's own aiohttp app, served on a loopback port in this test's
event loop (aiohttp's TestServer). Only the modes that leave the loop free can be tested so:
sync and mixed block the loop, and with it the upstream that should answer them (a deadlock
here; tests/test_modes.py runs them as processes).
"""

from __future__ import annotations

import asyncio
import os
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
        assert set(info) == {*settings.info(), *settings.knobs(), "cores", "max_delay", "upstream"}
        assert info["upstream"] is None and info["cores"] == len(os.sched_getaffinity(0))
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


def test_tasks_passes_upstreams_400_through_when_its_max_was_unknown_at_start():
    up = Upstream(upstream_delay=0.0, upstream_max_delay=1.0)
    app = receiver_app(up.url, receiver_mode="async")  # made before upstream serves: the fallback bound, 300 s

    async def test() -> None:
        async with up.serving(), client_of(app) as client:
            response = await client.get("/tasks/task1", params={"delay": "5"})
        assert response.status_code == 400
        assert "delay must be between 0 and 1 seconds" in response.json()["error"]

    run(test)


def delay_parameter(spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of /tasks/{name}'s ?delay= in an OpenAPI document (a number, or absent)."""
    parameters = spec["paths"]["/tasks/{name}"]["get"]["parameters"]
    (delay,) = [p for p in parameters if p["name"] == "delay"]
    assert delay["in"] == "query" and not delay.get("required", False)
    (number,) = [s for s in delay["schema"]["anyOf"] if s.get("type") == "number"]
    return number


# Upstream's max in the tests below: more significant digits than %g keeps, so that a delay
# passed on rounded (0.0123457) would be above it, and refused by upstream.
ODD_MAX = 0.0123456789


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_the_delay_bound_is_upstreams_max_read_at_start_in_the_spec_and_enforced(mode):
    up = Upstream(upstream_delay=0.0, upstream_max_delay=ODD_MAX)

    async def test() -> None:
        async with up.serving():
            # Made while upstream serves in this loop: in a thread, as its blocking read of /info needs.
            app = await asyncio.to_thread(receiver_app, up.url, receiver_mode=mode)
            async with client_of(app) as client:
                spec = (await client.get("/openapi.json")).json()
                info = (await client.get("/info")).json()
                at_max = await client.get("/tasks/task1", params={"delay": repr(ODD_MAX)})
                above = await client.get("/tasks/task1", params={"delay": "0.0123457"})
        assert delay_parameter(spec) == {"type": "number", "minimum": 0, "maximum": ODD_MAX}
        assert info["max_delay"] == {"seconds": ODD_MAX, "source": "upstream", "reason": None}
        assert info["upstream"]["max_delay"] == ODD_MAX
        assert at_max.status_code == 200, at_max.text  # passed on exactly: upstream takes it
        assert above.status_code == 422 and "less than or equal to 0.0123456789" in above.text, above.text

    run(test)


def test_an_unreachable_upstream_at_start_leaves_the_widest_bound_and_says_so():
    app = receiver_app(nobody(), receiver_mode="async")  # startup does not wait for upstream, nor fail

    async def test() -> None:
        async with client_of(app) as client:
            spec = (await client.get("/openapi.json")).json()
            info = (await client.get("/info")).json()
            healthz = await client.get("/healthz")
        assert healthz.status_code == 200
        assert delay_parameter(spec)["maximum"] == 300  # MAX_SECONDS: the most any UPSTREAM_MAX_DELAY can be
        assert info["max_delay"]["seconds"] == 300 and info["max_delay"]["source"] == "fallback"
        assert "did not tell its max_delay at start" in info["max_delay"]["reason"]

    run(test)


def test_the_spec_declares_every_answer_of_tasks_with_its_body_and_headers():
    spec = receiver_app(nobody(), receiver_mode="async").openapi()
    responses = spec["paths"]["/tasks/{name}"]["get"]["responses"]
    # 200 the seed's body; 422 a bad name or delay; 400 upstream's refusal passed on; 502 and 504
    # upstream failing or late (receiver/clients.py); 503 over RECEIVER_MAX_IN_FLIGHT.
    assert set(responses) == {"200", "400", "422", "502", "503", "504"}
    for status in ("400", "502", "503", "504"):
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    assert responses["503"]["headers"]["Retry-After"] == {
        "description": "seconds to wait before trying again", "required": True,
        "schema": {"type": "integer", "minimum": 1}}


def test_a_503_over_the_in_flight_limit_is_the_answer_the_spec_declares():
    up = Upstream(upstream_delay=0.5)  # the first request holds the one slot this long
    app = receiver_app(up.url, receiver_mode="async", receiver_max_in_flight=1)
    declared = app.openapi()["paths"]["/tasks/{name}"]["get"]["responses"]["503"]

    async def test() -> None:
        async with up.serving(), client_of(app) as client:
            answers = await asyncio.gather(client.get("/tasks/first"), client.get("/tasks/second"))
        assert sorted(r.status_code for r in answers) == [200, 503], [r.text for r in answers]
        shed = next(r for r in answers if r.status_code == 503)
        assert shed.headers["content-type"] == "application/json" and set(shed.json()) == {"error"}
        retry_after = declared["headers"]["Retry-After"]
        assert retry_after["required"] and int(shed.headers["Retry-After"]) >= retry_after["schema"]["minimum"]

    run(test)
