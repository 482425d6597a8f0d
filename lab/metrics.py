"""Metrics helpers shared by the three services.

The metrics endpoint runs in a thread of its own (prometheus-client's HTTP server), never on
the event loop, so `/metrics` still answers while sync mode blocks the receiver's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# `_created` series double every counter and histogram for no use in this lab.
disable_created_metrics()

# The longest delay or timeout any setting accepts, in seconds.
MAX_SECONDS = 300.0

# Latency buckets for every histogram in the lab. prometheus-client's defaults stop at 10 s,
# exactly the seed's delay; these reach past MAX_SECONDS, and queueing in sync mode
# (N requests x D seconds) lands in the upper ones.
BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0,
)

# How far back the in-flight peak looks, in seconds: longer than any scrape interval.
PEAK_WINDOW = 5.0

# How often the event-loop probe wakes up, in seconds.
PROBE_INTERVAL = 0.05


def serve(port: int, host: str) -> None:
    """Serve /metrics on host:port from a daemon thread."""
    start_http_server(port, addr=host)


class InFlight(Collector):
    """Requests in progress, and the highest number in progress over the last PEAK_WINDOW s.

    The peak makes short bursts visible even to a scraper that samples every few seconds:
    upstream's peak is 1 in sync mode and N in async mode. Change it from one thread only
    (the event loop); reading it from the metrics thread is safe.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry = REGISTRY):
        self.name = name
        self.documentation = documentation
        self.value = 0
        # (time, value) pairs, values falling from left to right: a sliding-window maximum.
        # When the count changes from a to b we record both, so the value in force at the
        # start of the window is still counted.
        self._maxima: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        registry.register(self)

    def _set(self, value: int) -> None:
        now = time.monotonic()
        with self._lock:
            for point in ((now, self.value), (now, value)):
                while self._maxima and self._maxima[-1][1] <= point[1]:
                    self._maxima.pop()
                self._maxima.append(point)
            self.value = value
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._maxima and self._maxima[0][0] < now - PEAK_WINDOW:
            self._maxima.popleft()

    def __enter__(self) -> "InFlight":
        self._set(self.value + 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._set(self.value - 1)

    def peak(self) -> int:
        with self._lock:
            self._forget(time.monotonic())
            return max([self.value, *(v for _, v in self._maxima)])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.value)
        yield GaugeMetricFamily(
            f"{self.name}_peak",
            f"Highest value of {self.name} over the last {PEAK_WINDOW:g} seconds.",
            value=self.peak(),
        )


class LoopLag(Collector):
    """A probe that measures how late the event loop wakes it up.

    `<namespace>_event_loop_lag_seconds` (histogram): lateness of every wake-up, recorded
    when the loop gets round to it. `<namespace>_event_loop_blocked_seconds` (gauge): how
    overdue the probe is right now, computed when /metrics is read, so it grows live while
    the loop is blocked.
    """

    def __init__(self, namespace: str, registry: CollectorRegistry = REGISTRY):
        self.histogram = Histogram(
            "event_loop_lag_seconds",
            f"How late the event loop woke a probe that slept {PROBE_INTERVAL:g} s.",
            namespace=namespace,
            buckets=BUCKETS,
            registry=registry,
        )
        self._blocked_name = f"{namespace}_event_loop_blocked_seconds"
        self._due: float | None = None
        registry.register(self)

    async def run(self) -> None:
        while True:
            self._due = time.monotonic() + PROBE_INTERVAL
            await asyncio.sleep(PROBE_INTERVAL)
            self.histogram.observe(max(0.0, time.monotonic() - self._due))

    def blocked(self) -> float:
        due = self._due
        return 0.0 if due is None else max(0.0, time.monotonic() - due)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            self._blocked_name,
            "How long the event loop has been overdue to wake the probe (0 when responsive).",
            value=self.blocked(),
        )
