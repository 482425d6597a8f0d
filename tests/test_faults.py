"""Upstream down, hung, resetting, answering badly or trickling: the receiver answers 502 or 504
in every mode, the sender counts each outcome and keeps going, and nothing is left behind once
upstream is back."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest

from lab import model
from tests.conftest import eventually, scrape
from tools.fault_proxy import FaultProxy
from tools.processes import Service, get, sender_once

RATE, DOWN_AT, DOWN_FOR, RECOVERY, TAIL = 20, 5.0, 10.0, 5.0, 5.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def tasks_answered(receiver: Service) -> float:
    """/tasks requests the receiver has answered, whatever the status."""
    return sum(v for (name, labels), v in scrape(receiver.metrics_url).items()
               if name == "receiver_http_requests_total" and dict(labels).get("route") == "/tasks/{name}")


def test_upstream_down_for_10_s_under_a_fixed_rate(start, tmp_path):
    upstream = start("upstream", UPSTREAM_DELAY="0.05", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, RECEIVER_UPSTREAM_TIMEOUT="2",
                     LOG_LEVEL="warning")
    get(f"{receiver.url}/tasks/warm")  # the pool opened, as it would be
    fds_before = open_fds(receiver.process.pid)
    duration = DOWN_AT + DOWN_FOR + RECOVERY + TAIL
    out = tmp_path / "rate.json"
    done: dict = {}
    sending = threading.Thread(target=lambda: done.setdefault("run", sender_once(
        receiver.url, timeout=duration + 60, args=("--json", str(out)), SENDER_RATE=str(RATE),
        SENDER_DURATION=f"{duration:g}", SENDER_TIMEOUT="10", LOG_LEVEL="warning")))
    answered_before = tasks_answered(receiver)
    sending.start()
    # The sender's offsets count from its own start: so does this clock, from its first answer (a
    # moment after its first send), not from when its process was spawned (python and aiohttp
    # take a while to start on a loaded machine, which shifted every window of the run).
    started = eventually(lambda: time.monotonic() if tasks_answered(receiver) > answered_before else None, 30,
                         "the sender's first request answered", interval=0.05)
    time.sleep(max(0.0, DOWN_AT - (time.monotonic() - started)))  # deliberate: the schedule of the fault
    upstream.process.send_signal(signal.SIGKILL)  # gone: connections refused, pooled ones dead
    upstream.process.wait()
    down_from = time.monotonic() - started
    time.sleep(DOWN_FOR)  # deliberate: upstream stays down this long (the behaviour under test)
    back = Service("upstream", {"UPSTREAM_DELAY": "0.05", "LOG_LEVEL": "warning"}, tmp_path / "upstream-back.log",
                   port=upstream.port, metrics_port=upstream.metrics_port).start().wait_healthy()
    back_at = time.monotonic() - started
    try:
        sending.join()
    finally:
        back.stop()
    run = done["run"]
    target = json.loads(out.read_text())["targets"][0]
    records = target["records"]  # [offset from start, latency or None, status, lag]

    # The sender kept going: every scheduled request sent and accounted for, by outcome.
    assert target["dropped"] == 0 and target["sent"] == len(records), run.stdout[-2000:]
    outcomes = Counter(str(status) for _, _, status, _ in records)
    assert set(outcomes) <= {"200", "502"}, outcomes  # refused upstream: 502, never a hang or a crash
    assert sum(outcomes.values()) == target["sent"] == sum(target["answered"].values())
    # While upstream was down: 502s, fast (a refused connection costs nothing to wait for).
    # Offsets count from the sender's own start, a moment before `started` (its first answer): margins of 2 s.
    down = [(latency, status) for offset, latency, status, _ in records if down_from + 0.5 < offset < back_at - 2.0]
    assert len(down) >= RATE * (DOWN_FOR - 3) and all(status == 502 for _, status in down), Counter(s for _, s in down)
    assert model.quantile(sorted(latency for latency, _ in down), 0.99) <= 0.1
    # Back: within RECOVERY seconds nearly everything succeeds again.
    after = [status for offset, _, status, _ in records if offset > back_at + RECOVERY]
    assert after and after.count(200) / len(after) >= 0.99, Counter(after)
    # Nothing left behind: the receiver holds no more descriptors (sockets) than before, within a second.
    eventually(lambda: open_fds(receiver.process.pid) <= fds_before + 2, 1,
               f"the receiver's descriptors back to at most {fds_before} + 2")


@pytest.mark.parametrize("mode", model.MODES)
def test_a_hung_upstream_gets_504_at_the_timeout_in_every_mode(start, mode):
    upstream = start("upstream", UPSTREAM_DELAY="0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, RECEIVER_UPSTREAM_TIMEOUT="1.5",
                     LOG_LEVEL="warning")
    assert get(f"{receiver.url}/tasks/warm")[0] == 200
    upstream.process.send_signal(signal.SIGSTOP)  # hung: connections accepted by the kernel, never answered
    try:
        began = time.monotonic()
        status, body = get(f"{receiver.url}/tasks/hung", timeout=10)
        took = time.monotonic() - began
    finally:
        upstream.process.send_signal(signal.SIGCONT)
    assert status == 504 and "within 1.5s" in json.loads(body)["error"], body
    assert 1.5 - 0.1 <= took <= 1.5 + 0.5, took  # at the timeout, not before and not much after
    assert get(f"{receiver.url}/tasks/again")[0] == 200  # upstream back: served again


# What the receiver answers when the proxy between it and upstream breaks the call this way.
FAULT_ANSWERS = {"reset": 502, "garbage": 502, "truncate": 502, "hang": 504, "trickle": 504}
FAULT_TIMEOUT = 1.5


# Every mode with the default clients; with httpx, the two modes whose calls are each client's
# alone (mixed, threaded and def make the same two calls, in other places).
FAULT_CASES = [*((mode, "aiohttp, requests") for mode in model.MODES), ("sync", "httpx"), ("async", "httpx")]


@pytest.mark.parametrize("mode, clients", FAULT_CASES)
def test_every_fault_between_receiver_and_upstream_gets_its_answer_in_every_mode(start, mode, clients):
    """Reset, not HTTP, cut short: 502 at once. Hung or trickling: 504 at the timeout, which for
    requests and httpx is a total deadline too (a trickle never trips their per-read timeouts)."""
    upstream = start("upstream", UPSTREAM_DELAY="0", LOG_LEVEL="warning")
    chosen = {"RECEIVER_ASYNC_CLIENT": "httpx", "RECEIVER_SYNC_CLIENT": "httpx"} if clients == "httpx" else {}
    with FaultProxy(upstream.url, "pass", trickle=0.1) as proxy:  # 0.1 s a byte: about 15 s for a whole answer
        receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=proxy.url,
                         RECEIVER_UPSTREAM_TIMEOUT=f"{FAULT_TIMEOUT:g}", LOG_LEVEL="warning", **chosen)
        fds_before = open_fds(receiver.process.pid)
        for fault, expected in FAULT_ANSWERS.items():
            # from the next connection on: each fault ends its connection, so the next call opens one
            proxy.fault = fault
            began = time.monotonic()
            status, body = get(f"{receiver.url}/tasks/{fault}", timeout=10)
            took = time.monotonic() - began
            assert (status, took < 10) == (expected, True), (fault, status, body)
            error = json.loads(body)["error"]
            if expected == 504:
                assert f"within {FAULT_TIMEOUT:g}s" in error, (fault, error)
                assert FAULT_TIMEOUT - 0.1 <= took <= FAULT_TIMEOUT + 0.5, (fault, took)
            else:
                assert error.startswith("upstream call failed"), (fault, error)
                assert took < 1.0, (fault, took)  # nothing to wait for
        proxy.fault = "pass"
        assert [get(f"{receiver.url}/tasks/after")[0] for _ in range(3)] == [200] * 3  # served again
        eventually(lambda: open_fds(receiver.process.pid) <= fds_before + 2, 0.5,
                   f"the receiver's descriptors back to at most {fds_before} + 2")
