"""The receiver's metrics.

The series written on every request are lean collectors rather than prometheus-client's
Counter, Histogram and Gauge: the same names, labels and exposition, for less work per
request. HttpMetrics keeps the three HTTP series (requests, their duration, in flight) in
one object that the middleware calls twice a request: one count per bucket per (route,
status), from which both the counter and the histogram are served, and no lock, since only
the event loop writes them. The upstream-call histogram takes a lock: in threaded mode
several threads write it. What they cost is measured by bench.passthrough (RECEIVER_METRICS
on and off, side by side) and bench.instructions: docs/performance.md, "What the receiver
costs per request".

Nothing is made at import: create_app builds a ReceiverMetrics for its app, and hands each
part to what writes it (the middleware, the clients, the culprit watcher, the loop probe).
In one process (uvicorn) they are registered in a CollectorRegistry of the app's own, which
`python -m receiver` serves on METRICS_PORT: two apps in one process keep apart. Under
gunicorn (RECEIVER_WORKERS > 1) each worker is a process of its own, and the worker's app
builds their shared form: prometheus-client's classes in multiprocess mode, whose values
are files that the gunicorn master serves (receiver/workers.py); no registry then.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from lab.metrics import BUCKETS, PEAK_WINDOW, PROBE_INTERVAL, InFlight, LoopLag, SharedInFlight, WindowMax
from receiver.settings import Settings


def bounds_of(buckets: Sequence[float]) -> tuple[float, ...]:
    """Upper bounds, sorted, ending in +Inf: counts[bisect_left(bounds, v)] is v's bucket (le=b counts v <= b)."""
    return tuple(sorted(float(b) for b in buckets if b != INF)) + (INF,)


def cumulative(les: Sequence[str], counts: Sequence[int]) -> list[tuple[str, int]]:
    """Per-bucket counts as a histogram's cumulative (le, count) pairs."""
    total, out = 0, []
    for le, count in zip(les, counts):
        total += count
        out.append((le, total))
    return out


class HistogramChild:
    """One labelled histogram. observe() is safe from any thread."""

    __slots__ = ("_bounds", "_counts", "_sum", "_lock")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * len(bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect_left(self._bounds, value)  # the first bound >= value
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float]:
        with self._lock:
            return list(self._counts), self._sum


class LabelledHistogram(Collector):
    """A histogram with labels, like prometheus_client.Histogram's, for less work per observation."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float] = BUCKETS, registry: CollectorRegistry | None = None):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = bounds_of(buckets)
        self._les = [floatToGoString(b) for b in self.bounds]
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        # The same children by the values as callers pass them: labels() on the hot path is
        # one dict lookup, with no str() and no tuple of strings.
        self._given: dict[tuple[object, ...], HistogramChild] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *given: object) -> HistogramChild:
        """The child for these label values, as callers pass them."""
        child = self._given.get(given)
        return child if child is not None else self._add(given)

    def _add(self, given: tuple[object, ...]) -> HistogramChild:
        values = tuple(map(str, given))
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        with self._lock:
            child = self._given[given] = self._children.setdefault(values, HistogramChild(self.bounds))
        return child

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):  # one C call: safe while a child is added
            counts, total = child.snapshot()
            family.add_metric(values, cumulative(self._les, counts), total)
        yield family


_REQUESTS = ("receiver_http_requests_total", "Requests answered by the receiver.", ["mode", "route", "status"])
_DURATION = (
    "receiver_http_request_duration_seconds",
    "Time from reading a request to sending its answer (queueing before that is not seen here).",
    ["mode", "route"],
)
_IN_FLIGHT = ("receiver_http_requests_in_flight", "/tasks requests the receiver is working on.")
# The clients' histogram: lean in one process, prometheus-client's under gunicorn.
UpstreamCalls = LabelledHistogram | Histogram
_UPSTREAM_CALLS = (
    "receiver_upstream_call_duration_seconds",
    "Duration of each call to upstream, by client library and outcome (ok, error, timeout).",
    ["client", "outcome"],
)


class Answered:
    """The requests answered with one (mode, route, status): how many per duration bucket, and their total time."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0


class HttpMetrics(Collector):
    """The receiver's HTTP series, kept by its middleware: begin() when a request comes, end() when answered.

    receiver_http_requests_total{mode,route,status} and receiver_http_request_duration_seconds
    {mode,route} come from the same counts (a histogram per status, summed over statuses), and
    receiver_http_requests_in_flight(_peak) from an InFlight. Written by the event loop only,
    so without a lock; the metrics thread reads copies, each made in one C call.
    """

    def __init__(self, buckets: Sequence[float] = BUCKETS, registry: CollectorRegistry | None = None):
        self.bounds = bounds_of(buckets)
        self._les = [floatToGoString(b) for b in self.bounds]
        self.in_flight = InFlight(*_IN_FLIGHT, registry=None)
        self._answered: dict[tuple[str, str, int], Answered] = {}
        if registry is not None:
            registry.register(self)

    def begin(self, task: bool) -> float:
        """A request came in (task: a /tasks request, counted in flight): the time to hand to end()."""
        if task:
            self.in_flight.value += 1
        return time.perf_counter()

    def end(self, mode: str, route: str, status: int, started: float, task: bool) -> None:
        """The request begun at `started` was answered with `status` (route: a template, never a raw path)."""
        now = time.perf_counter()
        seconds = now - started
        answered = self._answered.get((mode, route, status))
        if answered is None:
            answered = self._answered[(mode, route, status)] = Answered(len(self.bounds))
        answered.counts[bisect_left(self.bounds, seconds)] += 1
        answered.sum += seconds
        if task:
            self.in_flight.leave(now)

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        name, documentation, labels = _REQUESTS
        requests = CounterMetricFamily(name, documentation, labels=labels)
        by_route: dict[tuple[str, str], tuple[list[int], float]] = {}
        for (mode, route, status), answered in list(self._answered.items()):
            counts, total = list(answered.counts), answered.sum
            requests.add_metric([mode, route, str(status)], sum(counts))
            before, before_total = by_route.get((mode, route), ([0] * len(counts), 0.0))
            by_route[(mode, route)] = [a + b for a, b in zip(before, counts)], before_total + total
        name, documentation, labels = _DURATION
        duration = HistogramMetricFamily(name, documentation, labels=labels)
        for (mode, route), (counts, total) in by_route.items():
            duration.add_metric([mode, route], cumulative(self._les, counts), total)
        yield requests
        yield duration
        yield from self.in_flight.collect()


class SharedHttpMetrics:
    """HttpMetrics' calls on prometheus-client's classes in multiprocess mode (a worker under gunicorn).

    Their values live in files under PROMETHEUS_MULTIPROC_DIR that the serving process sums
    over the workers.
    """

    def __init__(self) -> None:
        self.requests = Counter(*_REQUESTS, registry=None)
        self.duration = Histogram(*_DURATION, buckets=BUCKETS, registry=None)
        self.in_flight = SharedInFlight(*_IN_FLIGHT)

    def begin(self, task: bool) -> float:
        if task:
            self.in_flight.__enter__()
        return time.perf_counter()

    def end(self, mode: str, route: str, status: int, started: float, task: bool) -> None:
        now = time.perf_counter()
        self.requests.labels(mode, route, str(status)).inc()
        self.duration.labels(mode, route).observe(now - started)
        if task:
            self.in_flight.leave(now)


PoolSource = Callable[[], dict[str, tuple[int, int, int]]]  # {pool: (busy, waiting, limit)}
_POOLS = (
    ("receiver_pool_busy", "Threads running a call (pool threads) or connections in use (pool aiohttp)."),
    ("receiver_pool_waiting", "Calls waiting for a thread (pool threads) or for a connection (pool aiohttp)."),
    ("receiver_pool_limit", "The pool's cap: RECEIVER_THREADS (threads), RECEIVER_POOL_LIMIT (aiohttp; 0: none)."),
)


# The busy and waiting counts' peaks: sampled at every tick of the loop probe (PROBE_INTERVAL)
# and kept over PEAK_WINDOW, so a pool filled for a second between two scrapes still shows.
_POOL_PEAKS = tuple((f"{name}_peak", f"The highest {name} over the last {PEAK_WINDOW:g} s, sampled every "
                     f"{PROBE_INTERVAL:g} s.") for name, _ in _POOLS[:2])


class PoolPeaks:
    """The highest busy and waiting count of each pool over the last PEAK_WINDOW s, sampled by sample()."""

    def __init__(self) -> None:
        self.source: PoolSource | None = None
        self._windows: dict[str, tuple[WindowMax, WindowMax]] = {}

    def sample(self) -> dict[str, tuple[int, int, int]]:
        """On the loop, at every wake-up of its probe: the pools as they are now."""
        now = time.monotonic()
        pools = self.source() if self.source is not None else {}
        for pool, (busy, waiting, _) in pools.items():
            windows = self._windows.get(pool) or self._windows.setdefault(pool, (WindowMax(), WindowMax()))
            windows[0].note(busy, now)
            windows[1].note(waiting, now)
        return pools

    def peaks(self, pools: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, int]]:
        """{pool: (busy peak, waiting peak)}, the values now (pools) included."""
        now = time.monotonic()
        found = {}
        for pool, (busy, waiting, _) in pools.items():
            windows = self._windows.get(pool)
            if windows is not None:
                busy, waiting = max(busy, int(windows[0].highest(now))), max(waiting, int(windows[1].highest(now)))
            found[pool] = (busy, waiting)
        return found


class Pools(PoolPeaks, Collector):
    """The receiver's pools, read from its clients when scraped, and their peaks (PoolPeaks).

    source() gives {pool: (busy, waiting, limit)}; None until the app has opened its clients.
    Nothing is counted per request.
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        super().__init__()
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pools = self.source() if self.source is not None else {}
        peaks = self.peaks(pools)
        for i, (name, documentation) in enumerate(_POOLS):
            family = GaugeMetricFamily(name, documentation, labels=["pool"])
            for pool, values in pools.items():
                family.add_metric([pool], values[i])
            yield family
        for i, (name, documentation) in enumerate(_POOL_PEAKS):
            family = GaugeMetricFamily(name, documentation, labels=["pool"])
            for pool, highest in peaks.items():
                family.add_metric([pool], highest[i])
            yield family


class SharedPools(PoolPeaks):
    """Pools for a worker under gunicorn: copied into multiprocess gauges at every tick of the loop probe.

    The peaks are each worker's, summed over the workers.
    """

    def __init__(self) -> None:
        super().__init__()
        self._gauges = [Gauge(name, documentation, ["pool"], multiprocess_mode="livesum", registry=None)
                        for name, documentation in (*_POOLS, *_POOL_PEAKS)]

    def refresh(self) -> None:
        pools = self.sample()
        peaks = self.peaks(pools)
        for pool, values in pools.items():
            for gauge, value in zip(self._gauges, (*values, *peaks[pool])):
                gauge.labels(pool).set(value)


_LOOP_BLOCKS = (
    "receiver_event_loop_block_seconds",
    "Seconds the event loop spent blocked (each block longer than LOOP_BLOCK_THRESHOLD), by the code it "
    "was stuck in: the innermost frame of the receiver's own code → the call below it (receiver/culprits.py). "
    "By mode too: a dashboard sums it over minutes, across a mode switch. kind: wait (the loop thread slept in "
    "a call) or cpu (it computed).",
    ["mode", "culprit", "kind"],
)


def receiver_info(settings: Settings, registry: CollectorRegistry) -> Info:
    """receiver_info: the mode and the caps that shape it (an app's registry, or the gunicorn master's)."""
    info = Info("receiver", "The receiver's mode and the caps that shape it.", registry=registry)
    info.info({key: str(value) for key, value in settings.info().items()})
    return info


def own_registry() -> CollectorRegistry:
    """A registry holding what prometheus-client's default one holds at start (process_*, python_*)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class ReceiverMetrics:
    """One app's metrics, in the form its settings call for; create_app builds it, and hands out its parts.

    One process: the lean collectors, in `registry`, the app's own, which /metrics serves.
    Under gunicorn (settings.receiver_workers > 1, `shared`): prometheus-client's classes in
    multiprocess mode, registered nowhere (`registry` is None): every worker writes its values
    to files in PROMETHEUS_MULTIPROC_DIR, and the master serves their sum (receiver/workers.py),
    receiver_info included, which the workers therefore leave out.

    http: the middleware's, None with RECEIVER_METRICS off (no middleware, no series).
    upstream_calls: the clients' timing of each call; `calls` is what the clients get: None
    with RECEIVER_METRICS off (the series then stands empty, as it always has).
    """

    def __init__(self, settings: Settings):
        self.shared = shared = settings.receiver_workers > 1
        self.registry: CollectorRegistry | None = None if shared else own_registry()
        registry = self.registry
        self.http: HttpMetrics | SharedHttpMetrics | None = None
        if settings.receiver_metrics:
            self.http = SharedHttpMetrics() if shared else HttpMetrics(registry=registry)
        self.upstream_calls: UpstreamCalls = (
            Histogram(*_UPSTREAM_CALLS, buckets=BUCKETS, registry=None) if shared
            else LabelledHistogram(*_UPSTREAM_CALLS, registry=registry))
        self.calls = self.upstream_calls if settings.receiver_metrics else None
        self.loop_lag = LoopLag("receiver", registry=registry, shared=shared)
        self.pools: Pools | SharedPools = SharedPools() if shared else Pools(registry=registry)
        if isinstance(self.http, SharedHttpMetrics):
            self.loop_lag.on_tick.append(self.http.in_flight.refresh)
        self.loop_lag.on_tick.append(self.pools.refresh if isinstance(self.pools, SharedPools) else self.pools.sample)
        self.loop_blocks = Counter(*_LOOP_BLOCKS, registry=registry)
        self.info = receiver_info(settings, registry) if registry is not None else None
