"""Open loop: requests at SENDER_RATE per second to every target, whatever the answers do.

The schedule is lab.arrivals' (the model replays the same one from the same seed). The
scheduler sleeps until the next intended send time, then starts every request that is due,
one task each, to every target. A request whose target already has SENDER_MAX_IN_FLIGHT in
flight at its intended time is dropped (counted, never sent late). Latency is timed from the
intended send time, as wrk2 and k6's constant-arrival-rate do, so a sender that falls behind
cannot hide queueing; a request started more than LATE_AFTER after its intended time is
counted late. The hot path does no logging, no formatting and no `.labels()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from lab.arrivals import offsets
from sender.metrics import Rates
from sender.settings import Settings
from sender.target import HDR_HIGHEST, Target, histogram

log = logging.getLogger("sender")

LATE_AFTER = 0.010  # seconds after its intended time a request counts as started late
WINDOW = 10.0  # seconds between summary lines, /info reads and achieved-rate updates
INFO_TIMEOUT = 5.0  # seconds a periodic /info read may take (a loaded sync receiver is slow)
OPEN_LOOP_NAME = "rate"  # {name} in SENDER_PATH for open-loop requests

TICK = 0.001  # the shortest sleep between batches, in seconds
# Seconds a stopping sender (SIGTERM, SIGINT) waits for the requests it has in flight before
# it cuts them and prints its summary: under the 10 s docker stop gives before its SIGKILL.
DRAIN = 8.0
monotonic = time.monotonic
current_task = asyncio.current_task


class RateTarget(Target):
    """A target during an open-loop run: the in-flight cap, the window, the records."""

    def __init__(self, base: str, session: aiohttp.ClientSession, prefix: str, url: str, cap: int):
        super().__init__(base, session, prefix)
        self.url = yarl.URL(url)  # parsed once, not per request
        self.cap = cap
        self.in_time = 0  # answers that came within the run's duration (the achieved rate)
        self.deadline = math.inf  # monotonic time the run's duration ends
        self.window = histogram()  # latency of answers in the current window (µs)
        # Per scheduled request, in schedule order: [offset, latency, status, lag] if sent (latency
        # and status None until answered; lag: seconds it started after its intended time, so a
        # reader can tell the sender's lateness from the receiver's time), the bare offset if
        # dropped (nothing to allocate).
        self.records: list[list[Any] | float] | None = None
        self._counted = (0, 0)  # sent, dropped: already added to the metrics
        self.refreshing: asyncio.Task | None = None
        self._snapshot = self._counts()

    def count_batch(self) -> None:
        """Add what a batch sent and dropped to the metrics: once per batch, not per request."""
        sent, dropped = self._counted
        if self.sent != sent:
            self.m.sent.inc(self.sent - sent)
        if self.dropped != dropped:
            self.m.dropped.inc(self.dropped - dropped)
        self._counted = (self.sent, self.dropped)

    def records_out(self) -> list[list[Any]]:
        """The records as [offset, latency or None, status or None or "dropped", lag or None]."""
        return [
            [r, None, "dropped", None] if isinstance(r, float) else r
            for r in (self.records or [])
        ]

    def _counts(self) -> tuple[int, ...]:
        ok = self.answered.get(200, 0)
        ended = sum(self.answered.values())
        return (self.sent, ok, ended - ok, self.dropped, self.late, self.answers)

    def window_line(self, seconds: float) -> str:
        """One summary line for the window just ended, and start the next window."""
        now = self._counts()
        sent, ok, errors, dropped, late, answers = (a - b for a, b in zip(now, self._snapshot))
        self._snapshot = now
        line = (
            f"rate {self.base}: mode={self.mode} sent={sent} ok={ok} errors={errors} dropped={dropped} "
            f"late={late} achieved={answers / seconds:.1f}/s p50={seconds_at(self.window, 50)} "
            f"p99={seconds_at(self.window, 99)} (last {seconds:.0f}s)"
        )
        self.hdr.add(self.window)
        self.window.reset()
        return line


def seconds_at(hdr: Any, percentile: float) -> str:
    return f"{hdr.get_value_at_percentile(percentile) / 1e6:.3f}s" if hdr.get_total_count() else "-"


async def request(t: RateTarget, intended: float, record: list[Any] | None, pending: set[asyncio.Task]) -> None:
    """One open-loop request, timed from its intended send time. `pending` holds its task
    (the run waits for, or cancels, what is in it); the request takes itself out when done."""
    lag = monotonic() - intended
    if lag > LATE_AFTER:
        t.late += 1
        t.m.late.inc()
    if record is not None:
        record[3] = lag
    status = None
    try:
        async with t.session.get(t.url) as response:
            await response.read()
            status = response.status
    except Exception:  # refused, reset, timed out, a malformed answer: no answer, counted as "error"
        pass
    finally:
        t.in_flight -= 1
        pending.discard(current_task())  # type: ignore[arg-type]
    done = monotonic()
    latency = done - intended
    m = t.m
    m.count(status)
    m.latency.observe(latency)
    t.answered[status] = t.answered.get(status, 0) + 1
    if status is not None:
        t.answers += 1
        if done <= t.deadline:
            t.in_time += 1
        t.window.record_value(min(int(latency * 1e6), HDR_HIGHEST))
        if record is not None:
            record[1] = latency
            record[2] = status


@dataclass
class Plan:
    """What one open-loop run does (from the settings)."""

    rate: float
    arrivals: str
    seed: int
    duration: float  # 0: until stopped
    max_in_flight: int
    timeout: float

    @classmethod
    def of(cls, settings: Settings) -> Plan:
        return cls(
            settings.sender_rate, settings.sender_arrivals, settings.sender_seed,
            settings.sender_duration, settings.sender_max_in_flight, settings.sender_timeout,
        )

    def offsets(self) -> Iterator[float]:
        """The intended send times, from the run's start: exactly lab.arrivals.schedule's."""
        times = offsets(self.rate, self.arrivals, self.seed)  # type: ignore[arg-type]
        if self.duration > 0:
            return itertools.takewhile(lambda t: t < self.duration, times)
        return times


class OpenLoop:
    """One open-loop run over some targets."""

    def __init__(self, targets: list[RateTarget], plan: Plan, keep_records: bool = False,
                 stop: asyncio.Event | None = None):
        self.targets = targets
        self.plan = plan
        self.keep_records = keep_records
        self.pending: set[asyncio.Task] = set()
        self.start = math.nan
        self.started_at = math.nan  # the same moment on the wall clock (Unix time): records' offsets count from it
        self.rates = Rates()
        self.stop = stop or asyncio.Event()
        self.cut = 0  # requests still in flight when the run ended, cancelled unanswered

    async def run(self) -> None:
        """Send the whole schedule (or until stopped), then wait for what is in flight.

        Stopped (self.stop set): nothing more is sent, and what is in flight gets DRAIN
        seconds instead of the request timeout.
        """
        plan = self.plan
        for t in self.targets:
            t.records = [] if self.keep_records else None
        await asyncio.gather(*(t.refresh_info(INFO_TIMEOUT) for t in self.targets))
        self.publish(first=True)
        ticker = asyncio.create_task(self.tick())
        try:
            self.start, self.started_at = monotonic(), time.time()
            for t in self.targets:
                t.deadline = self.start + plan.duration if plan.duration > 0 else math.inf
            scheduling = asyncio.ensure_future(self.schedule(plan.offsets()))
            stopping = asyncio.ensure_future(self.stop.wait())
            try:
                await asyncio.wait({scheduling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not scheduling.done():  # stopped (or cancelled): send nothing more
                    scheduling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scheduling
            if not scheduling.cancelled():
                scheduling.result()  # a schedule that failed says so
            if self.pending:
                await asyncio.wait(self.pending, timeout=DRAIN if self.stop.is_set() else plan.timeout + 1.0)
        finally:
            ticker.cancel()
            self.cut = sum(not task.done() for task in self.pending)
            for task in list(self.pending):
                task.cancel()
            for t in self.targets:
                if t.refreshing is not None:
                    t.refreshing.cancel()
                t.hdr.add(t.window)
                t.window.reset()
            self.publish()

    async def schedule(self, times: Iterable[float]) -> None:
        """Sleep until the next intended time, then start everything due, to every target."""
        targets, pending, start = self.targets, self.pending, self.start
        create_task = asyncio.get_running_loop().create_task
        add = pending.add
        keep = self.keep_records
        it = iter(times)
        offset = next(it, None)
        while offset is not None:
            wait = start + offset - monotonic()
            # Behind schedule or not, give the loop a turn: answers must get in. Sleeps are
            # at least TICK: event loops time out in whole milliseconds (uvloop would spin).
            await asyncio.sleep(max(wait, TICK) if wait > 0 else 0)
            now = monotonic()
            while offset is not None and start + offset <= now:
                intended = start + offset
                for t in targets:
                    if t.in_flight >= t.cap:
                        t.dropped += 1
                        if keep:
                            t.records.append(offset)  # type: ignore[union-attr]  # a bare offset: dropped
                        continue
                    t.in_flight += 1
                    if t.in_flight > t.peak_in_flight:
                        t.peak_in_flight = t.in_flight
                    t.sent += 1
                    record = None
                    if keep:
                        record = [offset, None, None, None]
                        t.records.append(record)  # type: ignore[union-attr]
                    add(create_task(request(t, intended, record, pending)))
                offset = next(it, None)
            for t in targets:
                t.count_batch()

    async def tick(self) -> None:
        """Every WINDOW seconds: a summary line per target, the rate gauges, a fresh /info."""
        number = 0
        while True:
            number += 1
            await asyncio.sleep(max(0.0, self.start + number * WINDOW - monotonic()))
            for t in self.targets:
                log.info(t.window_line(WINDOW))
                if t.refreshing is None or t.refreshing.done():
                    t.refreshing = asyncio.create_task(t.refresh_info(INFO_TIMEOUT, keep_known=True))
            self.publish()

    def publish(self, first: bool = False) -> None:
        self.rates.publish([t.mode for t in self.targets], self.plan.rate, first)

    def elapsed(self) -> float:
        return monotonic() - self.start
