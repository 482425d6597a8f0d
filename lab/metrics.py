"""Metrics helpers shared by the three services.

The metrics endpoint runs in a thread of its own (prometheus-client's HTTP server), never on
the event loop, so `/metrics` still answers while sync mode blocks the receiver's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# `_created` series double every counter and histogram for no use in this lab.
disable_created_metrics()

# Latency buckets for every histogram in the lab. histogram_quantile interpolates linearly
# inside a bucket, so a quantile can be off by up to its bucket's width: with coarse buckets
# (1, 2.5, 5, ...) a 1 s call reads 1.75 s at p50. From 1/16 s to 128 s the bounds are
# 2^(1/16) apart, as Prometheus's native histograms lay them out at schema 4: any
# quantile there reads within 4.5% of the truth, for any delay, with no setting to follow
# D. Below, a few coarse bounds for fast answers and loop lags; above, up to past
# lab.settings.MAX_SECONDS. A fixed set, so every series has the same bounded number of buckets.
STEPS_PER_DOUBLING = 16
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    *(round(2.0 ** (k / STEPS_PER_DOUBLING), 6) for k in range(-4 * STEPS_PER_DOUBLING, 7 * STEPS_PER_DOUBLING + 1)),
    180.0, 300.0, 600.0,
)

# The header a receiver names its mode in on every upstream call; upstream labels by it.
CALLER_HEADER = "X-Lab-Mode"

# How far back the in-flight peak looks, in seconds: longer than any scrape interval.
PEAK_WINDOW = 5.0
# ...to within this many seconds (the peak is kept per slot of this length).
PEAK_SLOT = 0.25

# How often the event-loop probe wakes up, in seconds.
PROBE_INTERVAL = 0.05


# The gauge of the longest block over the last PEAK_WINDOW seconds (each worker writes its own
# under gunicorn; the serving process adds the block going on now).
BLOCKED_PEAK_SUFFIX = "_event_loop_blocked_peak_seconds"
BLOCKED_HELP = "How long the event loop has been overdue to wake the probe (0 when responsive)."
BLOCKED_PEAK_HELP = (f"The longest the event loop was blocked over the last {PEAK_WINDOW:g} s, a block going on "
                     "included: read this one on a dashboard, it cannot fall between two scrapes.")

# The gauge each worker's probe writes when it is next due (multiprocess mode): the process
# that serves /metrics turns the earliest into <namespace>_event_loop_blocked_seconds.
PROBE_DUE_SUFFIX = "_event_loop_probe_due_seconds"

def serve(port: int, host: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on host:port from a daemon thread."""
    start_http_server(port, addr=host, registry=registry)


class WindowMax:
    """The highest value noted over the last PEAK_WINDOW seconds, to within one PEAK_SLOT.

    A gauge read every few seconds misses what happened between two reads; this keeps it.
    note() keeps the highest value noted in the current slot; the first note after a slot's
    end files the slot away with its end time. One thread writes (the event loop), any may
    read: no lock, and every step a reader can see is consistent.
    """

    def __init__(self) -> None:
        self._high: float = 0  # the highest value noted in the current slot
        self._slot_end = 0.0  # when the current slot ends (the clock the caller passes)
        self._slots: deque[tuple[float, float]] = deque()  # (end, highest) of earlier slots, oldest first

    def note(self, value: float, now: float) -> None:
        if now >= self._slot_end:
            self._file_slot(now)
        if value > self._high:
            self._high = value

    def _file_slot(self, now: float) -> None:
        slots = self._slots
        if self._high:
            slots.append((self._slot_end, self._high))  # filed before _high is reset: a reader never misses it
        self._high = 0
        self._slot_end = now + PEAK_SLOT
        while slots and slots[0][0] < now - PEAK_WINDOW - PEAK_SLOT:  # out of every window from now on
            slots.popleft()

    def highest(self, now: float) -> float:
        """The highest value noted over the PEAK_WINDOW seconds up to now (0 if none)."""
        # In this order: a slot filed meanwhile is in the copy of _slots made after reading _high.
        high, slot_end = self._high, self._slot_end
        since = now - PEAK_WINDOW
        recent = [h for end, h in self._slots.copy() if end >= since]
        return max(high if slot_end >= since else 0, *recent, 0)


class InFlight(WindowMax, Collector):
    """Requests in progress, and the highest number in progress over the last PEAK_WINDOW s.

    The peak makes short bursts visible even to a scraper that samples every few seconds:
    upstream's peak is 1 in sync mode and N in async mode. Change it from one thread only
    (the event loop); reading it from the metrics thread is safe.

    It is on every request's path, so changing it takes no lock and little work: entering
    adds one; leaving notes the value that ended (WindowMax) and takes one off.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry | None = REGISTRY):
        super().__init__()
        self.name = name
        self.documentation = documentation
        self.value = 0
        if registry is not None:  # None: counted by an InFlightBy or a receiver's HttpMetrics
            registry.register(self)

    def __enter__(self) -> InFlight:
        self.value += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave(time.perf_counter())

    def leave(self, now: float) -> None:
        """One request ended at `now` (time.perf_counter())."""
        ending = self.value
        self.note(ending, now)
        self.value = ending - 1

    def peak(self, now: float | None = None) -> int:
        """The highest value over the PEAK_WINDOW seconds up to now (time.perf_counter(), by default)."""
        value = self.value  # first: a request that ends meanwhile is then in highest()
        return int(max(value, self.highest(time.perf_counter() if now is None else now)))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.value)
        yield GaugeMetricFamily(
            f"{self.name}_peak",
            f"Highest value of {self.name} over the last {PEAK_WINDOW:g} seconds.",
            value=self.peak(),
        )


class SharedInFlight(InFlight):
    """InFlight for one of several worker processes: prometheus-client's multiprocess gauges.

    The current value is a live sum over workers; the peak each worker saw over the last
    PEAK_WINDOW seconds is written by refresh() (the worker's event-loop probe calls it) and
    served as the largest over live workers ("livemax"): one worker's peak, not the total.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry | None = None):
        # registry: None by default, as the values are files that the serving process reads.
        super().__init__(name, documentation, registry=None)
        self._current = Gauge(name, documentation, multiprocess_mode="livesum", registry=registry)
        self._peak = Gauge(f"{name}_peak", f"Highest value of {name} in one worker over the last "
                           f"{PEAK_WINDOW:g} seconds.", multiprocess_mode="livemax", registry=registry)

    def __enter__(self) -> SharedInFlight:
        super().__enter__()
        self._current.inc()
        return self

    def leave(self, now: float) -> None:
        super().leave(now)
        self._current.dec()

    def refresh(self) -> None:
        self._peak.set(self.peak())


class InFlightBy(Collector):
    """InFlight per value of one label, from a closed set known up front (bounded series).

    Every value's series exists from the start (at 0), so dashboards have data for each.
    """

    def __init__(self, name: str, documentation: str, label: str, values: Iterable[str],
                 registry: CollectorRegistry = REGISTRY):
        self.name = name
        self.documentation = documentation
        self.label = label
        self.children = {value: InFlight(name, documentation, registry=None) for value in values}
        registry.register(self)

    def __getitem__(self, value: str) -> InFlight:
        return self.children[value]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        current = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        peak = GaugeMetricFamily(f"{self.name}_peak",
                                 f"Highest value of {self.name} over the last {PEAK_WINDOW:g} seconds.",
                                 labels=[self.label])
        for value, child in self.children.items():
            current.add_metric([value], child.value)
            peak.add_metric([value], child.peak())
        yield current
        yield peak


class LoopLag(Collector):
    """A probe that measures how late the event loop wakes it up.

    `<namespace>_event_loop_lag_seconds` (histogram): lateness of every wake-up, recorded
    when the loop gets round to it. `<namespace>_event_loop_blocked_seconds` (gauge): how
    overdue the probe is right now, computed when /metrics is read, so it grows live while
    the loop is blocked. `<namespace>_event_loop_blocked_peak_seconds` (gauge): the longest
    block over the last PEAK_WINDOW seconds, the one going on included, so that a scrape
    every few seconds sees every block that ended between two scrapes.

    shared: one of several worker processes whose metrics go through prometheus-client's
    multiprocess mode (the receiver under gunicorn). The two gauges are then not collected
    here: each wake-up writes when the probe is next due and the longest block, and the
    process that serves /metrics makes the gauges from every worker's (receiver/workers.py).
    registry: where the histogram and (not shared) the gauges are registered; None: nowhere.
    """

    interval = PROBE_INTERVAL  # seconds the probe sleeps (what receiver/culprits.py's watcher reads)

    def __init__(self, namespace: str, registry: CollectorRegistry | None = REGISTRY, shared: bool = False):
        self.histogram = Histogram(
            "event_loop_lag_seconds",
            f"How late the event loop woke a probe that slept {PROBE_INTERVAL:g} s.",
            namespace=namespace,
            buckets=BUCKETS,
            registry=registry,
        )
        self._namespace = namespace
        self._blocked_name = f"{namespace}_event_loop_blocked_seconds"
        self._peak_name = f"{namespace}{BLOCKED_PEAK_SUFFIX}"
        self._due: float | None = None
        self.blocks = WindowMax()  # each wake-up's lateness, on the monotonic clock
        self.on_tick: list[Callable[[], object]] = []  # called at every wake-up, on the loop
        self.shared = shared
        if not shared and registry is not None:
            registry.register(self)

    async def run(self) -> None:
        # Shared: each worker writes when it is next due. The gauges are made here, just before
        # the first write: made earlier, the due time would read 0 meanwhile (a worker overdue
        # since boot). Their values are files: no registry.
        shared = self.shared
        due = Gauge(f"{self._namespace}{PROBE_DUE_SUFFIX}", "When this worker's probe is due (monotonic clock).",
                    multiprocess_mode="livemin", registry=None) if shared else None
        peak = Gauge(self._peak_name, "The longest this worker's loop was blocked over the last "
                     f"{PEAK_WINDOW:g} s.", multiprocess_mode="livemax", registry=None) if shared else None
        while True:
            self._due = time.monotonic() + PROBE_INTERVAL
            if due is not None:
                due.set(self._due)
            await asyncio.sleep(PROBE_INTERVAL)
            now = time.monotonic()
            lateness = max(0.0, now - self._due)
            self.histogram.observe(lateness)
            self.blocks.note(lateness, now)
            if peak is not None:
                peak.set(self.blocks.highest(now))
            for tick in self.on_tick:
                tick()

    @property
    def due(self) -> float | None:
        """When the probe is next due (time.monotonic()); None before it first runs."""
        return self._due

    def blocked(self) -> float:
        due = self._due
        return 0.0 if due is None else max(0.0, time.monotonic() - due)

    def blocked_peak(self) -> float:
        """The longest block over the last PEAK_WINDOW seconds, the one going on included."""
        blocked = self.blocked()  # first: a block that ends meanwhile is then in highest()
        return max(blocked, self.blocks.highest(time.monotonic()))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self._blocked_name, BLOCKED_HELP, value=self.blocked())
        yield GaugeMetricFamily(self._peak_name, BLOCKED_PEAK_HELP, value=self.blocked_peak())
