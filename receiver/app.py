"""The receiver: GET /tasks/{name} calls upstream the way RECEIVER_MODE says."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import aiohttp
import requests
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab import SEED_BODY
from lab.metrics import CALLER_HEADER
from lab.settings import MAX_SECONDS, PositiveSeconds
from receiver.clients import UpstreamError, direct_session, open_clients
from receiver.culprits import Culprits
from receiver.metrics import HttpMetrics, ReceiverMetrics, SharedHttpMetrics
from receiver.modes import HANDLERS, Handler
from receiver.settings import Settings

log = logging.getLogger("receiver")

TASKS = "/tasks/"  # the prefix of the one route that calls upstream
INFO_TIMEOUT = 2.0  # seconds the receiver waits for upstream's /info (at start, and in its own /info)

TaskName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
UPSTREAM_MAX_DELAY = TypeAdapter(PositiveSeconds)  # what upstream's UPSTREAM_MAX_DELAY may be (its setting's type)


class ErrorBody(BaseModel):
    error: str


@dataclass(frozen=True)
class DelayBound:
    """The longest ?delay= the receiver admits: its spec's maximum, and what it refuses with 422 above.

    The bound is upstream's (it refuses a longer delay with 400), read from upstream's GET /info
    when the app is made. source "fallback": upstream did not say (not up yet, say), so the
    bound is MAX_SECONDS, the most any UPSTREAM_MAX_DELAY can be, and upstream may refuse less.
    """

    seconds: float
    source: Literal["upstream", "fallback"]
    reason: str | None = None  # why the fallback

    def info(self) -> dict[str, object]:
        return {"seconds": self.seconds, "source": self.source, "reason": self.reason}


def read_delay_bound(upstream_base: str, caller: str) -> DelayBound:
    """Upstream's UPSTREAM_MAX_DELAY, from its GET /info: one try, at most INFO_TIMEOUT; else the fallback.

    One try, not a wait: the receiver starts whether upstream is up or not (compose starts it
    once upstream is healthy; the tests start upstream first).
    """
    try:
        with direct_session() as session:
            response = session.get(f"{upstream_base}/info", timeout=INFO_TIMEOUT, headers={CALLER_HEADER: caller})
        response.raise_for_status()
        seconds = UPSTREAM_MAX_DELAY.validate_python(response.json()["max_delay"])
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
        reason = str(exc).splitlines()[0] if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        log.warning("receiver: upstream's max delay unknown (%s): ?delay= up to %gs is passed on, and upstream "
                    "may refuse it with 400; restart the receiver once upstream is up", reason, MAX_SECONDS)
        return DelayBound(MAX_SECONDS, "fallback", f"upstream's /info did not tell its max_delay at start: {reason}")
    log.info("receiver: ?delay= up to %gs, upstream's UPSTREAM_MAX_DELAY (its /info)", seconds)
    return DelayBound(seconds, "upstream")


def delay_query(bound: DelayBound) -> Any:
    """The ?delay= parameter, bounded by upstream's max: the spec says the bound, FastAPI enforces it (422)."""
    said = ("upstream's UPSTREAM_MAX_DELAY, read from its /info at start" if bound.source == "upstream"
            else "upstream's max was unknown at start: upstream may refuse less with 400")
    return Query(None, ge=0, le=bound.seconds, allow_inf_nan=False,
                 description=f"Seconds upstream waits; its default if absent. At most {bound.seconds:g} ({said}).")


class MetricsMiddleware:
    """Pure ASGI middleware (BaseHTTPMiddleware would cost most of the throughput).

    Counts and times every request under its route template, and keeps the in-flight gauge
    of /tasks requests (the lab's work: not /healthz, /info or the docs): two calls a request
    into the app's HTTP metrics, whose methods are bound here once (no lookup per request
    beyond the instance's own attribute).
    """

    def __init__(self, app: ASGIApp, http: HttpMetrics | SharedHttpMetrics, mode: str):
        self.app = app
        self.mode = mode
        self.begin = http.begin
        self.end = http.end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        task = scope["path"].startswith(TASKS)
        started = self.begin(task)
        status = 500

        def send_and_record(message: Message) -> Awaitable[None]:
            # Not a coroutine of its own: it hands back send's, one frame less per message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.end(self.mode, getattr(scope.get("route"), "path", "unmatched"), status, started, task)  # a template


# Every refusal /tasks/{name} can answer beside FastAPI's own 422 (a bad name or delay, a delay
# above the bound): receiver/clients.py maps upstream's answers to 400 (its 4xx), 502 and 504.
TASK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "upstream refused the call: its 4xx passes through. Only if upstream's max delay was "
                         "unknown at start (/info's max_delay.source: fallback) or upstream lowered it since",
          "model": ErrorBody},
    502: {"description": "upstream refused, failed or answered 5xx", "model": ErrorBody},
    503: {"description": "RECEIVER_MAX_IN_FLIGHT requests in flight already: answered at once", "model": ErrorBody,
          "headers": {"Retry-After": {"description": "seconds to wait before trying again", "required": True,
                                      "schema": {"type": "integer", "minimum": 1}}}},
    504: {"description": "upstream did not answer within RECEIVER_UPSTREAM_TIMEOUT", "model": ErrorBody},
}


class Tasks:
    """GET /tasks/{name} around its upstream call: the in-flight limit, the seed's log lines, the answers.

    On the event loop, or on anyio's threads in def mode: the count takes a lock, and is kept
    only when there is a limit to check it against.
    """

    def __init__(self, work_url: str, limit: int):
        self.work_url = work_url
        self.limit = limit  # RECEIVER_MAX_IN_FLIGHT; 0: none
        self.busy = 0  # /tasks requests this process is working on (counted only with a limit)
        self._lock = threading.Lock()
        self._overloaded = {"error": f"the receiver is working on RECEIVER_MAX_IN_FLIGHT={limit} requests already: "
                                     "retry later, or raise the limit"}

    def enter(self, name: str) -> Response | None:
        """None: go on (counted in); else the 503 to answer at once."""
        if self.limit:
            with self._lock:
                busy = self.busy
                if busy < self.limit:
                    self.busy = busy + 1
            if busy >= self.limit:
                # Shed at once: a queue without bound only makes every later answer later. A sync
                # loop never gets here while it is blocked: its backlog waits unread in the kernel.
                log.info("Send %s error 503: %d in flight", name, busy)
                return JSONResponse(self._overloaded, status_code=503, headers={"Retry-After": "1"})
        log.info("Received %s Request!!", name)
        return None

    def leave(self) -> None:
        if self.limit:
            with self._lock:
                self.busy -= 1

    def url(self, delay: float | None) -> str:
        # repr, not :g: the shortest text of this very float, so upstream never reads one rounded past its max.
        return self.work_url if delay is None else f"{self.work_url}?delay={delay!r}"

    def failed(self, name: str, exc: UpstreamError) -> Response:
        log.info("Send %s error %d: %s", name, exc.status, exc.detail)
        return JSONResponse({"error": exc.detail}, status_code=exc.status)

    def answered(self, name: str) -> Response:
        log.info("Send %s response", name)
        return Response(SEED_BODY, media_type="application/json")


def task_endpoint(handle: Handler, tasks: Tasks, bound: DelayBound) -> Callable[..., Any]:
    """GET /tasks/{name} for this mode's handler: one body for every mode.

    FastAPI runs an `async def` endpoint on the event loop and a plain `def` one in anyio's
    thread pool, and tells them apart by the function it is given (it looks through
    functools.wraps and partial), so def mode needs a plain def of its own. That def is
    only a shell around the same body: def mode's handler is a plain function, so the body's
    coroutine never suspends, and the pool's thread runs it to its end with one send().
    Every other mode gets the body itself: nothing is added on the loop.
    """
    query = delay_query(bound)

    async def task(name: TaskName, request: Request, delay: float | None = query) -> Response:
        if (shed := tasks.enter(name)) is not None:
            return shed
        try:
            pending = handle(request.app.state.clients, tasks.url(delay))
            if pending is not None:  # every mode but def: a coroutine, awaited on the loop
                await pending
        except UpstreamError as exc:
            return tasks.failed(name, exc)
        finally:
            tasks.leave()
        return tasks.answered(name)

    if inspect.iscoroutinefunction(handle):
        return task
    body = task

    def task(name: TaskName, request: Request, delay: float | None = query) -> Response:  # type: ignore[no-redef]
        # A plain def endpoint (def mode): FastAPI runs all of it in anyio's thread pool.
        return run_to_end(body(name, request, delay))

    return task


def run_to_end(coroutine: Coroutine[Any, Any, Response]) -> Response:
    """The answer of a coroutine that never suspends, run in this thread (def mode's task body)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the task body waited on something in def mode: its handler must be a plain function")


def create_app(settings: Settings) -> FastAPI:
    """The receiver's app, with metrics of its own (app.state.metrics, a ReceiverMetrics).

    One process: `python -m receiver` serves app.state.metrics.registry on METRICS_PORT.
    Under gunicorn (RECEIVER_WORKERS > 1) the workers' values are files, served by the master.
    """
    measured = ReceiverMetrics(settings)
    work_url = f"{settings.upstream_base}/work"
    bound = read_delay_bound(settings.upstream_base, settings.receiver_mode)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        probe = asyncio.create_task(measured.loop_lag.run())
        culprits = Culprits(measured.loop_lag,
                            lambda name, kind: measured.loop_blocks.labels(settings.receiver_mode, name, kind),
                            settings.loop_block_threshold, settings.loop_culprits_max)
        if settings.loop_block_threshold > 0:
            culprits.start(threading.get_ident())  # this thread runs the loop
        async with open_clients(settings, measured.calls) as clients:
            app.state.clients = clients
            measured.pools.source = clients.pools  # this app's pools, read from these clients until they close
            yield
            measured.pools.source = None
        culprits.stop()
        probe.cancel()

    # FastAPI's built-in OpenTelemetry stays off: the lab measures with Prometheus, and
    # no OpenTelemetry provider is configured, yet FastAPI would look for one on every request.
    app = FastAPI(title="receiver", lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.metrics = measured
    if measured.http is not None:  # RECEIVER_METRICS off: no middleware, and no HTTP series to serve
        app.add_middleware(MetricsMiddleware, http=measured.http, mode=settings.receiver_mode)
    app.get("/tasks/{name}", responses=TASK_ERRORS)(task_endpoint(HANDLERS[settings.receiver_mode],
                                                                  Tasks(work_url, settings.receiver_max_in_flight),
                                                                  bound))

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        """The mode, its caps, the delay bound and its source, and upstream's own settings (null if unreachable)."""
        try:
            async with request.app.state.clients.session.get(
                f"{settings.upstream_base}/info", timeout=aiohttp.ClientTimeout(total=INFO_TIMEOUT)
            ) as response:
                upstream = await response.json() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            upstream = None
        # cores: how many of RECEIVER_CPU_PROCESSES can compute at once (the model's P')
        return {**settings.info(), **settings.knobs(), "cores": len(os.sched_getaffinity(0)),
                "max_delay": bound.info(), "upstream": upstream}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Starlette tries routes in order, and FastAPI registered its docs routes (/openapi.json,
    # /docs, /docs/oauth2-redirect, /redoc) first: the route every request takes goes first
    # instead. No path matches two routes, so only the time to find it changes.
    app.router.routes.sort(key=lambda route: getattr(route, "path", None) != "/tasks/{name}")
    return app
