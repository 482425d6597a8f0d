"""The watchdog behind requests' total deadline (receiver/deadline.py), on its own."""

import time

from receiver.deadline import Watchdog


def test_calls_in_flight_expire_and_finished_ones_leave_without_waiting_for_their_deadline():
    dog = Watchdog()
    with dog.call(10.0) as finished:
        pass
    with dog.call(0.1) as slow:
        time.sleep(0.3)  # deliberate: the call outlives its deadline (the behaviour under test), not a wait for a state
    assert slow.expired and slow.done
    assert finished.done and not finished.expired
    assert dog._due == []  # the finished call left at the first wake-up, not 10 s later
