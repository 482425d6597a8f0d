"""Who blocked the loop: the receiver names the code its event loop was stuck in, only where a mode blocks."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time

import pytest
import uvloop
from prometheus_client import CollectorRegistry, Counter

from lab.metrics import LoopLag
from receiver.culprits import OTHER, SAMPLE_INTERVAL, Culprits, culprit, stack_of
from tests.conftest import scrape
from tools.processes import sender_once

D, N = 0.4, 3
REQUESTS_CALL = "receiver.clients.call_with_requests → requests.sessions.Session.get"


def block_seconds(receiver) -> dict[str, float]:
    """receiver_event_loop_block_seconds_total by culprit, from the receiver's /metrics."""
    return {dict(labels)["culprit"]: value for (name, labels), value in scrape(receiver.metrics_url).items()
            if name == "receiver_event_loop_block_seconds_total"}


def burst(start, mode: str, **env: str):
    upstream = start("upstream", UPSTREAM_DELAY=f"{D:g}", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, LOG_LEVEL="warning", **env)
    done = sender_once(receiver.url, timeout=60, SENDER_CONCURRENCY=str(N), LOG_LEVEL="warning")
    assert done.returncode == 0, done.stdout + done.stderr
    time.sleep(3 * SAMPLE_INTERVAL)  # the watcher charges a block's end at its next look
    return receiver


@pytest.mark.parametrize("mode", ["sync", "mixed"])
def test_a_blocking_mode_names_requests_under_its_handler(start, mode):
    receiver = burst(start, mode)
    seconds = block_seconds(receiver)
    assert list(seconds) == [REQUESTS_CALL], seconds
    # N requests calls of D each held the loop (counted from when the 50 ms probe was due)
    assert 0.8 * N * D <= seconds[REQUESTS_CALL] <= 1.1 * N * D, seconds
    blocks = [line for line in receiver.log().splitlines() if "event loop blocked" in line]
    assert blocks, receiver.log()[-2000:]
    for line in blocks:  # one line per block, with the stack from the handler down
        assert f"by {REQUESTS_CALL}; stack:" in line, line
        assert re.search(rf"receiver\.modes:\d+ {mode} > receiver\.clients:\d+ call_with_requests > "
                         r"requests\.sessions:\d+ Session\.get > .* socket:\d+ SocketIO\.readinto$", line), line


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_a_mode_that_does_not_block_records_nothing(start, mode):
    receiver = burst(start, mode)
    assert block_seconds(receiver) == {}
    assert "event loop blocked" not in receiver.log()


def test_a_threshold_of_0_turns_it_off(start):
    receiver = burst(start, "sync", LOOP_BLOCK_THRESHOLD="0")
    assert block_seconds(receiver) == {}


def test_culprits_are_bounded_the_rest_count_as_other():
    seconds = Counter("blocked", "x", ["culprit"], registry=CollectorRegistry())
    culprits = Culprits(LoopLag("test", registry=CollectorRegistry()), seconds, threshold=0.1, max_culprits=2)
    assert [culprits.charge(name, 1.0) for name in ("a", "b", "c", "d", "a")] == ["a", "b", OTHER, OTHER, "a"]
    assert {s.labels["culprit"]: s.value for s in seconds.collect()[0].samples} == {"a": 2.0, "b": 1.0, OTHER: 2.0}


def test_a_loop_between_callbacks_blames_nobody():
    # uvloop runs its loop in C: an idle (or catching-up) loop's stack ends in asyncio's runner.
    ready = threading.Event()

    async def idle() -> None:
        ready.set()
        await asyncio.sleep(0.5)

    thread = threading.Thread(target=lambda: uvloop.run(idle()))
    thread.start()
    ready.wait(5)
    time.sleep(0.1)  # in the loop's poll now, no Python code of anyone's running
    frames = stack_of(sys._current_frames()[thread.ident])
    thread.join()
    assert culprit(frames) is None, [f.f_code.co_qualname for f in frames]
