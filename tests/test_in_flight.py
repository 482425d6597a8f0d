"""Peaks kept between scrapes: the highest value over the last PEAK_WINDOW seconds, to within a slot."""

import asyncio
import time

from prometheus_client import CollectorRegistry

from lab.metrics import PEAK_SLOT, PEAK_WINDOW, PROBE_INTERVAL, InFlight, LoopLag

T = 1000.0  # a time.perf_counter() value; the gauge is told every time, so nothing here waits


def burst(gauge: InFlight, size: int, at: float) -> None:
    for _ in range(size):
        gauge.__enter__()
    for _ in range(size):
        gauge.leave(at)


def test_a_burst_is_seen_for_the_window_then_forgotten():
    gauge = InFlight("x", "x", registry=None)
    burst(gauge, 5, T)
    assert gauge.value == 0
    assert gauge.peak(T) == 5
    assert gauge.peak(T + PEAK_WINDOW) == 5
    assert gauge.peak(T + PEAK_WINDOW + PEAK_SLOT + 0.01) == 0


def test_requests_still_in_flight_count():
    gauge = InFlight("x", "x", registry=None)
    for _ in range(3):
        gauge.__enter__()
    assert gauge.peak(T) == 3
    assert gauge.peak(T + 10 * PEAK_WINDOW) == 3


def test_a_smaller_later_burst_outlives_a_larger_earlier_one():
    gauge = InFlight("x", "x", registry=None)
    burst(gauge, 5, T)
    burst(gauge, 2, T + 3.0)  # in a later slot: the first burst's slot is filed away
    assert gauge.peak(T + 3.0) == 5
    assert gauge.peak(T + PEAK_WINDOW + PEAK_SLOT + 0.01) == 2
    assert gauge.peak(T + 3.0 + PEAK_WINDOW + PEAK_SLOT + 0.01) == 0
    burst(gauge, 1, T + 100.0)  # much later: every earlier slot is dropped, not kept for ever
    assert len(gauge._slots) <= 1 and gauge.peak(T + 100.0) == 1


def test_a_block_between_two_scrapes_is_still_seen_by_the_blocked_peak():
    # The loop blocked for 0.4 s and then ran again: the gauge of now says 0, the peak says 0.4 s.
    lag = LoopLag("t", registry=CollectorRegistry())

    async def block_then_read() -> tuple[float, float]:
        probe = asyncio.create_task(lag.run())
        await asyncio.sleep(2 * PROBE_INTERVAL)  # the probe is running
        time.sleep(0.4)  # deliberate: the loop is blocked, as requests inside async def blocks it
        woke = lag.blocks.highest(time.monotonic())
        while lag.blocks.highest(time.monotonic()) == woke:  # until the probe has woken after the block
            await asyncio.sleep(PROBE_INTERVAL / 5)
        read = lag.blocked(), lag.blocked_peak()
        probe.cancel()
        return read

    blocked, peak = asyncio.run(asyncio.wait_for(block_then_read(), 5))
    assert blocked < 0.1
    assert 0.4 - PROBE_INTERVAL <= peak < 0.6
