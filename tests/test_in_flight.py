"""The in-flight gauge's peak: the highest value over the last PEAK_WINDOW seconds, to within a slot."""

from lab.metrics import PEAK_SLOT, PEAK_WINDOW, InFlight

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
