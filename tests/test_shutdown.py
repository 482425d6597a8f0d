"""SIGTERM (docker stop) with requests in flight: they are answered, and the process exits 0."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.conftest import eventually, scrape, value
from tools.processes import Service, sender_once

N, D = 100, 2.0


@pytest.mark.parametrize("stopped", ["receiver", "upstream"])
def test_sigterm_drains_every_request_in_flight_and_exits_0(start, tmp_path, stopped):
    upstream = start("upstream", UPSTREAM_DELAY=str(D), LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    victim = {"receiver": receiver, "upstream": upstream}[stopped]
    out = tmp_path / "burst.json"
    sending = threading.Thread(target=sender_once, args=(receiver.url,),
                               kwargs={"timeout": 60, "args": ("--json", str(out)), "SENDER_CONCURRENCY": str(N),
                                       "LOG_LEVEL": "warning"})
    sending.start()
    # The whole burst in flight at both hops: every request has reached upstream, none answered.
    eventually(lambda: value(scrape(upstream.metrics_url), "upstream_http_requests_in_flight", caller="async") == N, 20,
               f"{N} requests in flight at upstream")
    in_flight = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    code = victim.process.wait(timeout=D + 10)
    stopped_after = time.monotonic() - in_flight
    sending.join()
    statuses = Counter(r["status"] for r in json.loads(out.read_text())["targets"][0]["results"])
    assert statuses == {200: N}, statuses  # every request in flight was finished, none cut
    assert code == 0, victim.log()[-2000:]  # drained: a clean exit, not death by the signal
    assert stopped_after < D + 1.0  # gone as soon as the last answer is out: D after the burst reached upstream


def stop_sender_when(sender: Service, ready: Callable[[], bool], what: str) -> tuple[int, float, str]:
    """SIGTERM to a running sender once ready(): its exit code, how long it took to exit, its log."""
    try:
        eventually(ready, 20, what)
        signalled = time.monotonic()
        sender.process.send_signal(signal.SIGTERM)
        code = sender.process.wait(timeout=20)
        return code, time.monotonic() - signalled, sender.log()
    finally:
        sender.stop()


def test_a_stopped_open_loop_sender_waits_for_its_requests_and_prints_its_summary(start, tmp_path):
    upstream = start("upstream", UPSTREAM_DELAY="1.0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    sender = Service("sender", {"RECEIVER_URL": receiver.url, "SENDER_RATE": "20", "LOG_LEVEL": "info"},
                     tmp_path / "sender.log").start()

    def sent_and_answered(count: int) -> bool:  # two seconds of the schedule, the first second answered
        try:
            seen = scrape(sender.metrics_url, timeout=1)
        except OSError:
            return False
        return (value(seen, "sender_requests_sent_total", mode="async") >= 2 * count
                and value(seen, "sender_requests_total", mode="async", status="200") >= count)

    code, took, log = stop_sender_when(sender, lambda: sent_and_answered(20), "the sender 2 s into its schedule")
    assert code == 0, log
    assert 0.5 < took < 2.5, log  # it waited for the last second's requests (D = 1 s), not for nothing
    line = re.search(r"rate \S+: done mode=async scheduled=(\d+) sent=(\d+) ok=(\d+) errors=(\d+) dropped=(\d+)", log)
    assert line, log  # the summary, as at the end of a run
    scheduled, sent, ok, errors, dropped = map(int, line.groups())
    # every request sent was answered, those still in flight at the signal included (one second's)
    assert sent == ok and errors == dropped == 0 and sent >= 40, line[0]
    assert "cut unanswered" not in log


def test_a_stopped_burst_sender_finishes_its_burst(start, tmp_path):
    upstream = start("upstream", UPSTREAM_DELAY="1.0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="sync", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    sender = Service("sender", {"RECEIVER_URL": receiver.url, "SENDER_CONCURRENCY": "4", "SENDER_INTERVAL": "30",
                                "LOG_LEVEL": "info"}, tmp_path / "sender.log").start()
    code, took, log = stop_sender_when(  # halfway through the sync burst of 4 s: two answered
        sender, lambda: "--- task2 status = 200" in sender.log(), "the burst's second answer")
    assert code == 0, log
    assert "=== burst 1: N=4" in log and "failed=0" in log, log  # the burst went on to its end, and its line
    assert "stopped after 1 burst(s)" in log and "burst 2" not in log
    assert took < 4.0, log
