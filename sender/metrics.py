"""The sender's metrics. Every series but the loop probe's carries `mode`: the target
receiver's mode from its GET /info, or "unknown" (so the label takes at most five values).

The hot path never calls `.labels()`: `children(mode)` binds every child of a mode once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from lab import model
from lab.metrics import BUCKETS, LoopLag

UNKNOWN = "unknown"
MODE_LABELS: tuple[str, ...] = (*model.MODES, UNKNOWN)


REQUESTS = Counter(
    "sender_requests_total",
    "Requests that ended, by the receiver's HTTP status (error: no answer: refused, reset, timed out).",
    ["mode", "status"],
)
SENT = Counter("sender_requests_sent_total", "Requests started (bursts and open loop).", ["mode"])
DROPPED = Counter(
    "sender_requests_dropped_total",
    "Open loop: requests not sent because the target had SENDER_MAX_IN_FLIGHT in flight at their intended time.",
    ["mode"],
)
LATE = Counter(
    "sender_requests_late_total",
    "Open loop: requests started more than 10 ms after their intended send time (still sent, still timed from it).",
    ["mode"],
)
LATENCY = Histogram(
    "sender_request_duration_seconds",
    "Time from the request's intended send time to its answer (or to its failure).",
    ["mode"],
    buckets=BUCKETS,
)
OFFERED = Gauge(
    "sender_offered_requests_per_second",
    "Requests per second the sender offers: SENDER_RATE in open loop, N/SENDER_INTERVAL in bursts.",
    ["mode"],
)
ACHIEVED = Gauge(
    "sender_achieved_requests_per_second",
    "HTTP answers (any status) per second over the last 10 s.",
    ["mode"],
)
BURSTS = Counter("sender_bursts_total", "Bursts sent.", ["mode"])
BURSTS_FAILED = Counter(
    "sender_bursts_failed_total",
    "Bursts that did not reach their receiver (a request without an answer, or the receiver's mode unknown): "
    "they have no makespan.",
    ["mode"],
)
BURST_SIZE = Gauge("sender_burst_size", "Requests in the last burst (N).", ["mode"])
MAKESPAN = Gauge(
    "sender_burst_makespan_seconds", "Seconds from the last burst's send to its last answer.", ["mode"]
)
PREDICTED = Gauge(
    "sender_burst_predicted_makespan_seconds",
    "The model's makespan for the last burst, from the receiver's mode and caps (NaN if unknown).",
    ["mode"],
)
LOOP_LAG = LoopLag("sender")


class Children:
    """One mode's metric children, bound once; the status children as they are first needed."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sent = SENT.labels(mode)
        self.dropped = DROPPED.labels(mode)
        self.late = LATE.labels(mode)
        self.latency = LATENCY.labels(mode)
        self.ok = REQUESTS.labels(mode, "200")
        self.error = REQUESTS.labels(mode, "error")
        self._statuses = {200: self.ok, None: self.error}
        self.answers = 0  # HTTP answers (any status) counted here: the achieved rate's source

    def count(self, status: int | None) -> None:
        """One request ended with this HTTP status (None: no answer)."""
        child = self._statuses.get(status)
        if child is None:
            child = self._statuses[status] = REQUESTS.labels(self.mode, str(status))
        child.inc()
        if status is not None:
            self.answers += 1


_CHILDREN: dict[str, Children] = {}


def children(mode: str | None) -> Children:
    """The children of a mode, bound on first use; anything but a known mode is "unknown"."""
    key = mode if mode in model.MODES else UNKNOWN
    found = _CHILDREN.get(key)  # type: ignore[arg-type]
    if found is None:
        found = _CHILDREN[key] = Children(key)  # type: ignore[index]
    return found


def publish(gauge: Gauge, values: Mapping[str, float]) -> None:
    """Set a gauge's series to these {mode: value}, and drop the series of modes not in it
    (a receiver switched modes), so the dashboard shows no stale line."""
    for mode, value in values.items():
        gauge.labels(mode).set(value)
    for mode in MODE_LABELS:
        if mode not in values:
            gauge.remove(mode)


class Rates:
    """sender_offered_requests_per_second and sender_achieved_requests_per_second, per mode.

    Several targets in the same mode add up. Achieved: HTTP answers per second since the last
    publish (every 10 s), counted by the modes' children, so bursts and open loop alike.
    """

    def __init__(self) -> None:
        self.when = time.monotonic()
        self.last = {mode: c.answers for mode, c in _CHILDREN.items()}

    def publish(self, modes: Iterable[str], offered_each: float, first: bool = False) -> None:
        """modes: each target's mode (one entry per target); offered_each: its requests/s.
        first: the run starts now (achieved 0, counting from here)."""
        now = time.monotonic()
        elapsed = now - self.when
        offered: dict[str, float] = {}
        achieved: dict[str, float] = {}
        for mode in modes:
            offered[mode] = offered.get(mode, 0.0) + offered_each
            answers = children(mode).answers - self.last.get(mode, 0)
            achieved[mode] = 0.0 if first or elapsed <= 0 else answers / elapsed
        self.last = {mode: c.answers for mode, c in _CHILDREN.items()}
        self.when = now
        publish(OFFERED, offered)
        publish(ACHIEVED, achieved)
