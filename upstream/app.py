"""The slow dependency: waits without blocking, then answers the seed's body."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext

from aiohttp import web

from lab import SEED_BODY
from lab.metrics import CALLER_HEADER
from upstream.metrics import CALLERS, DURATION, IN_FLIGHT, LOOP_LAG, REQUESTS
from upstream.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class BadDelay(Exception):
    pass


def parse_delay(raw: str, max_delay: float) -> float:
    """A delay in seconds from a query or path value, or BadDelay saying what is allowed."""
    try:
        delay = float(raw)
    except ValueError:
        raise BadDelay(f"delay must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(delay) and 0 <= delay <= max_delay):
        raise BadDelay(f"delay must be between 0 and {max_delay:g} seconds, got {raw!r}")
    return delay


PROBES = frozenset({"/healthz", "/info"})  # asked by healthchecks and senders: not the work the lab counts
NOT_COUNTED = nullcontext()


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    caller = request.headers.get(CALLER_HEADER, "other")
    if caller not in CALLERS:  # bounded: an unknown value is "other", never a new series
        caller = "other"
    started = time.perf_counter()
    status = 500
    with NOT_COUNTED if route in PROBES else IN_FLIGHT[caller]:  # in flight: calls that do work, not probes
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            REQUESTS.labels(route, str(status), caller).inc()
            DURATION.labels(route, caller).observe(time.perf_counter() - started)


async def work(request: web.Request) -> web.Response:
    """GET /work?delay=S: wait S seconds (default UPSTREAM_DELAY) and answer the seed's body."""
    settings = request.app[SETTINGS]
    raw = request.query.get("delay")
    try:
        delay = settings.upstream_delay if raw is None else parse_delay(raw, settings.upstream_max_delay)
    except BadDelay as exc:
        return error(400, str(exc))
    if settings.upstream_jitter:
        delay = max(0.0, delay + random.uniform(-settings.upstream_jitter, settings.upstream_jitter))
    await asyncio.sleep(delay)
    if random.random() < settings.upstream_error_rate:
        return error(500, "injected failure (UPSTREAM_ERROR_RATE)")
    return web.Response(body=SEED_BODY, content_type="application/json")


def httpbin_echo(request: web.Request) -> dict[str, object]:
    return {
        "args": dict(request.query),
        "headers": dict(request.headers),
        "origin": request.remote,
        "url": str(request.url),
    }


async def get(request: web.Request) -> web.Response:
    """GET /get, as httpbin.org answers it: the seed's hello world runs against this."""
    return web.json_response(httpbin_echo(request))


async def delay(request: web.Request) -> web.Response:
    """GET /delay/{n}, as httpbin.org: wait n seconds, then echo the request."""
    try:
        seconds = parse_delay(request.match_info["n"], request.app[SETTINGS].upstream_max_delay)
    except BadDelay as exc:
        return error(400, str(exc))
    await asyncio.sleep(seconds)
    return web.json_response(httpbin_echo(request))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def info(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "delay": settings.upstream_delay,
            "jitter": settings.upstream_jitter,
            "error_rate": settings.upstream_error_rate,
            "max_delay": settings.upstream_max_delay,
        }
    )


async def run_probe(app: web.Application):  # cleanup context: the event-loop lag probe
    task = asyncio.create_task(LOOP_LAG.run())
    yield
    task.cancel()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[observe])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(run_probe)
    app.router.add_get("/work", work)
    app.router.add_get("/get", get)
    app.router.add_get("/delay/{n}", delay)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/info", info)
    return app
