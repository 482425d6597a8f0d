"""The receiver's metrics.

The three series written on every request (requests, their duration, each upstream call)
are lean collectors rather than prometheus-client's Counter and Histogram: the same names,
labels and exposition, but an observation is one bisect and two additions under a lock.
Measured with bench.passthrough (RECEIVER_METRICS on and off, interleaved rounds, async
mode at zero delay), metrics cost about 7% of the receiver's CPU per request with
prometheus-client's calls and about 3-4% with these.

Under gunicorn (RECEIVER_WORKERS > 1) each worker is a process of its own, and these take
their shared form (lab.metrics.shared): prometheus-client's classes in multiprocess mode,
served by the gunicorn master (receiver/workers.py).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from lab import metrics
from lab.metrics import BUCKETS, InFlight, LoopLag, SharedInFlight


class CounterChild:
    """One labelled counter. inc() is safe from any thread."""

    __slots__ = ("value", "_lock")

    def __init__(self) -> None:
        self.value = 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount


class HistogramChild:
    """One labelled histogram. observe() is safe from any thread."""

    __slots__ = ("_bounds", "_counts", "_sum", "_lock")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * len(bounds)  # per bucket, not cumulative: le=b counts values <= b
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


class _Labelled(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], CounterChild | HistogramChild] = {}
        # The same children by the values as callers pass them (a status as an int, say):
        # labels() on the hot path is one dict lookup, with no str() and no tuple of strings.
        self._given: dict[tuple[object, ...], CounterChild | HistogramChild] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, *given: object) -> CounterChild | HistogramChild:
        """The child for these label values, as callers pass them (a status as an int, say)."""
        child = self._given.get(given)  # the hot path: one dict lookup, no str(), no new tuple of strings
        return child if child is not None else self._add(given)

    def _add(self, given: tuple[object, ...]) -> CounterChild | HistogramChild:
        values = tuple(map(str, given))
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        with self._lock:
            child = self._given[given] = self._children.setdefault(values, self._make())
        return child

    def _make(self) -> CounterChild | HistogramChild:
        raise NotImplementedError

    def _items(self) -> list[tuple[tuple[str, ...], CounterChild | HistogramChild]]:
        return list(self._children.items())  # one C call: safe while the loop adds a child


class LabelledCounter(_Labelled):
    """A counter with labels (exposed as `<name>_total`), like prometheus_client.Counter's."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry = REGISTRY):
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _make(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._items():
            family.add_metric(values, child.value)
        yield family


class LabelledHistogram(_Labelled):
    """A histogram with labels, like prometheus_client.Histogram's."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float] = BUCKETS, registry: CollectorRegistry = REGISTRY):
        super().__init__(name, documentation, labelnames, registry)
        self.bounds = tuple(sorted(float(b) for b in buckets if b != INF)) + (INF,)
        self._les = [floatToGoString(b) for b in self.bounds]

    def _make(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._items():
            counts, total = child.snapshot()
            cumulative, buckets = 0, []
            for le, count in zip(self._les, counts):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, total)
        yield family


_REQUESTS = ("receiver_http_requests_total", "Requests answered by the receiver.", ["mode", "route", "status"])
_DURATION = (
    "receiver_http_request_duration_seconds",
    "Time from reading a request to sending its answer (queueing before that is not seen here).",
    ["mode", "route"],
)
_IN_FLIGHT = ("receiver_http_requests_in_flight", "Requests the receiver is working on.")
_UPSTREAM_CALLS = (
    "receiver_upstream_call_duration_seconds",
    "Duration of each call to upstream, by client library and outcome (ok, error, timeout).",
    ["client", "outcome"],
)

if metrics.shared:
    # A worker under gunicorn: prometheus-client's own classes, whose values live in files
    # under PROMETHEUS_MULTIPROC_DIR that the serving process sums over the workers.
    REQUESTS: LabelledCounter | Counter = Counter(*_REQUESTS)
    DURATION: LabelledHistogram | Histogram = Histogram(*_DURATION, buckets=BUCKETS)
    IN_FLIGHT: InFlight = SharedInFlight(*_IN_FLIGHT)
    UPSTREAM_CALLS: LabelledHistogram | Histogram = Histogram(*_UPSTREAM_CALLS, buckets=BUCKETS)
else:
    REQUESTS = LabelledCounter(*_REQUESTS)
    DURATION = LabelledHistogram(*_DURATION)
    IN_FLIGHT = InFlight(*_IN_FLIGHT)
    UPSTREAM_CALLS = LabelledHistogram(*_UPSTREAM_CALLS)
LOOP_LAG = LoopLag("receiver")
if isinstance(IN_FLIGHT, SharedInFlight):
    LOOP_LAG.on_tick.append(IN_FLIGHT.refresh)
INFO = Info("receiver", "The receiver's mode and the caps that shape it.")
