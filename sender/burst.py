"""One burst: N requests sent at the same moment, each timed from that moment."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from lab import model
from sender.metrics import Children, children
from sender.settings import request_url
from sender.target import fetch_info

__all__ = ["Burst", "Prediction", "Result", "fetch_info", "predict", "run_burst", "task_names"]

log = logging.getLogger("sender")


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float  # from the burst's start (the intended send time) to the answer
    status: int | None  # None: no answer (refused, reset, timed out)
    body: str


@dataclass(frozen=True)
class Burst:
    results: list[Result]

    @property
    def makespan(self) -> float:
        return max(r.seconds for r in self.results)

    @property
    def failures(self) -> int:
        return sum(r.status != 200 for r in self.results)

    @property
    def unanswered(self) -> int:
        """Requests that got no HTTP answer (refused, reset, timed out)."""
        return sum(r.status is None for r in self.results)


@dataclass(frozen=True)
class Prediction:
    mode: model.Mode
    delay: float
    makespan: float
    workers: int = 1
    cpu: float = 0.0  # c, seconds of work per request
    processes: int = 0  # P

    def __str__(self) -> str:
        if self.cpu and self.workers == 1:
            formula = model.WORK_FORMULAS[self.mode][self.processes > 0]
            pool = f", P={self.processes}" if self.processes else ""
            return f"{self.makespan:.3f}s [{formula}, D={self.delay:g}s, c={self.cpu * 1000:g}ms{pool}]"
        if self.workers == 1:
            return f"{self.makespan:.3f}s [{model.FORMULAS[self.mode]}, D={self.delay:g}s]"
        return (f"{self.makespan:.3f}s [{model.FORMULAS_PER_WORKER[self.mode]} if W={self.workers} workers "
                f"share the burst evenly, D={self.delay:g}s]")


def task_names(n: int) -> list[str]:
    return [f"task{i}" for i in range(1, n + 1)]


def predict(info: dict[str, Any] | None, n: int, delay: float | None) -> Prediction | None:
    """The model's makespan for a burst of n, from the receiver's /info."""
    if info is None or info.get("mode") not in model.MODES:
        return None
    if delay is None:
        delay = (info.get("upstream") or {}).get("delay")
        if delay is None:
            return None
    caps = model.Caps.from_info(info)
    return Prediction(info["mode"], delay, model.makespan(info["mode"], n, delay, caps), caps.workers, caps.cpu,
                      caps.processes)


async def send(
    session: aiohttp.ClientSession, url: str, name: str, start: float, m: Children, prefix: str = ""
) -> Result:
    log.info("%s--- %s -----", prefix, name)
    log.info("%s--- %s Send!!", prefix, name)
    m.sent.inc()
    try:
        async with session.get(url) as response:
            status: int | None = response.status
            body = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, body = None, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    log.info("%s--- %s status = %s", prefix, name, status or "error")
    log.info("%s--- %s%s", prefix, name, body)
    m.count(status)
    m.latency.observe(seconds)
    return Result(name, seconds, status, body)


async def run_burst(
    session: aiohttp.ClientSession,
    receiver: str,
    n: int,
    delay: float | None,
    *,
    mode: str | None = None,
    start: float | None = None,
    prefix: str = "",
) -> Burst:
    """Send task1..taskN at once to GET /tasks/{name}; time each from the common start.

    mode: the receiver's mode for the metrics' label (None: unknown). start: the intended send
    time (time.perf_counter()), shared when several targets get their bursts at once.
    prefix: put before each log line (the target, when there are several).
    """
    m = children(mode)
    start = time.perf_counter() if start is None else start
    results = await asyncio.gather(
        *(send(session, request_url(receiver, name, delay), name, start, m, prefix) for name in task_names(n))
    )
    return Burst(list(results))
