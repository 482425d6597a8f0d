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
from receiver.cpu import compute
from receiver.culprits import OTHER, SAMPLE_INTERVAL, Block, Culprits, cpu_clock, culprit, is_own, kind_of, stack_of
from tests.conftest import eventually, scrape
from tools.processes import sender_once

D, N = 0.4, 3
REQUESTS_CALL = "receiver.clients.call_with_requests → requests.sessions.Session.get"


def block_seconds_by_kind(receiver) -> dict[tuple[str, str], float]:
    """receiver_event_loop_block_seconds_total by (culprit, kind), from the receiver's /metrics."""
    return {(dict(labels)["culprit"], dict(labels)["kind"]): value
            for (name, labels), value in scrape(receiver.metrics_url).items()
            if name == "receiver_event_loop_block_seconds_total"}


def block_seconds(receiver) -> dict[str, float]:
    """The same by culprit, whatever the kind."""
    seconds: dict[str, float] = {}
    for (name, _), value in block_seconds_by_kind(receiver).items():
        seconds[name] = seconds.get(name, 0.0) + value
    return seconds


def charged_to(seconds: dict[str, float], culprit: str) -> bool:
    """The burst's blocks were culprit's: nine tenths of their seconds or more, and the most.

    Each sample of a block goes to the frame the loop is in at that moment, and the loop runs a
    little else inside a long block (its probe's own tick, which reads the pools): a loaded
    machine may catch a sample or two there."""
    return bool(seconds) and max(seconds, key=seconds.__getitem__) == culprit and \
        seconds[culprit] >= 0.9 * sum(seconds.values())


BLOCK_LINE = re.compile(r"event loop blocked ([\d.]+) s by ")


def burst(start, mode: str, **env: str):
    upstream = start("upstream", UPSTREAM_DELAY=f"{D:g}", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, LOG_LEVEL="warning", **env)
    done = sender_once(receiver.url, timeout=60, SENDER_CONCURRENCY=str(N), LOG_LEVEL="warning")
    assert done.returncode == 0, done.stdout + done.stderr
    return receiver


def every_block_over(receiver) -> dict[str, float] | None:
    """The seconds by culprit once every block charged so far is over; None while one is going on.

    The watcher charges a block as it samples it, and its end (and its log line) at its next
    look after the loop woke the probe: a block is over when the seconds logged, block by
    block, add up to what the counter holds. The log is read first: a block that ends
    between the two reads shows in the counter only, and the check waits for it.
    """
    logged = [float(seconds) for seconds in BLOCK_LINE.findall(receiver.log())]
    seconds = block_seconds(receiver)
    if not logged or abs(sum(seconds.values()) - sum(logged)) > 0.001 * len(logged):  # lines say %.3f
        return None
    return seconds


def nothing_recorded(receiver) -> dict[str, float]:
    """The seconds by culprit after the watcher had several looks at the probe with the burst over."""
    # Deliberate fixed wait: what is shown is that nothing gets recorded, so there is no state to wait for.
    time.sleep(3 * SAMPLE_INTERVAL)
    return block_seconds(receiver)


# The culprit each blocking library names (RECEIVER_SYNC_CLIENT), and its stack's last frames.
BLOCKING_CALLS = {
    "requests": (REQUESTS_CALL, r"receiver\.clients:\d+ call_with_requests > requests\.sessions:\d+ Session\.get > "
                 r".* socket:\d+ SocketIO\.readinto$"),
    "httpx": ("receiver.clients.call_with_httpx_sync → httpx._client.Client.get",
              r"receiver\.clients:\d+ call_with_httpx_sync > httpx\._client:\d+ Client\.get > .* httpcore\."),
}


@pytest.mark.parametrize("mode, client", [("sync", "requests"), ("mixed", "requests"), ("sync", "httpx")])
def test_a_blocking_mode_names_its_sync_client_under_its_handler(start, mode, client):
    receiver = burst(start, mode, RECEIVER_SYNC_CLIENT=client)
    call, stack = BLOCKING_CALLS[client]
    seconds = eventually(lambda: every_block_over(receiver), 10, "the watcher's end of every block of the burst")
    assert charged_to(seconds, call), seconds
    # N blocking calls of D each held the loop (counted from when the 50 ms probe was due)
    assert 0.8 * N * D <= seconds[call] <= 1.1 * N * D, seconds
    blocks = [line for line in receiver.log().splitlines() if "event loop blocked" in line]
    assert blocks, receiver.log()[-2000:]
    # a blocking call sleeps in the kernel: the blocks waited, nearly all of them (the loop
    # computes a little between two calls, and a busy machine may stretch that past a tenth of
    # a 50 ms look)
    by_kind = block_seconds_by_kind(receiver)
    assert by_kind[(call, "wait")] >= 0.9 * sum(by_kind.values()), by_kind
    for line in blocks:  # one line per block, with the stack from the handler down
        assert f"by {call} (wait); stack:" in line, line
        assert re.search(rf"receiver\.modes:\d+ {mode} > {stack}", line), line


def test_work_on_the_loop_is_named_and_counted_as_computing(start):
    # async with RECEIVER_CPU_MS: the calls overlap, then N·c of work holds the loop
    receiver = burst(start, "async", RECEIVER_CPU_MS="200")
    seconds = eventually(lambda: every_block_over(receiver), 10, "the watcher's end of every block of the burst")
    work = "receiver.cpu.compute"
    assert charged_to(seconds, work), seconds
    by_kind = block_seconds_by_kind(receiver)
    assert by_kind[(work, "cpu")] >= 0.8 * sum(by_kind.values()), by_kind  # computing, nearly all of it
    # N·c of CPU time held the loop: as long or longer on the wall clock (a busy machine shares its cores)
    assert seconds[work] >= 0.8 * N * 0.2, seconds
    assert all(f"by {work} (cpu)" in line or f"by {work} (wait)" in line
               for line in receiver.log().splitlines() if "event loop blocked" in line)


def test_a_thread_computing_and_a_thread_sleeping_read_cpu_and_wait():
    clocks: dict[str, tuple[float, float]] = {}

    def measure(name: str, work) -> None:
        clock, wall = cpu_clock(threading.get_ident()), time.monotonic()
        before = clock()
        work()
        clocks[name] = (clock() - before, time.monotonic() - wall)

    threads = [threading.Thread(target=measure, args=("compute", lambda: compute(100))),
               threading.Thread(target=measure, args=("sleep", lambda: time.sleep(0.1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kind_of(*clocks["compute"]) == "cpu" and kind_of(*clocks["sleep"]) == "wait", clocks


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_a_mode_that_does_not_block_records_nothing(start, mode):
    receiver = burst(start, mode)
    assert nothing_recorded(receiver) == {}
    assert "event loop blocked" not in receiver.log()


def test_a_threshold_of_0_turns_it_off(start):
    receiver = burst(start, "sync", LOOP_BLOCK_THRESHOLD="0")
    assert nothing_recorded(receiver) == {}


def test_culprits_are_bounded_the_rest_count_as_other():
    seconds = Counter("blocked", "x", ["culprit", "kind"], registry=CollectorRegistry())
    culprits = Culprits(LoopLag("test", registry=CollectorRegistry()), seconds.labels, threshold=0.1, max_culprits=2)
    assert [culprits.charge(name, 1.0) for name in ("a", "b", "c", "d", "a")] == ["a", "b", OTHER, OTHER, "a"]
    assert culprits.charge("a", 0.5, "cpu") == "a" and culprits.charge("e", 0.5, "cpu") == OTHER
    assert {(s.labels["culprit"], s.labels["kind"]): s.value for s in seconds.collect()[0].samples} == {
        ("a", "wait"): 2.0, ("a", "cpu"): 0.5, ("b", "wait"): 1.0, (OTHER, "wait"): 2.0, (OTHER, "cpu"): 0.5}


def test_a_block_is_the_culprits_that_holds_the_most_of_it_not_the_last_ones():
    # A blocking call holds the loop for 1.1 s; one look saw the loop compute as the first call
    # returned and the next began, and the last sample lands while the loop sends a response.
    # The block is the call's, waiting, and so is its log line.
    block = Block()
    assert block.main() is None
    call, send = ["call frames"], ["send frames"]
    for overdue, kind in ((0.15, "wait"), (0.6, "cpu"), (1.1, "wait")):
        block.add(REQUESTS_CALL, overdue, kind, call)  # type: ignore[arg-type]  # frames: only passed through
    block.add("uvicorn RequestResponseCycle.send", 1.15, "cpu", send)  # type: ignore[arg-type]
    assert block.charged == 1.15
    assert block.main() == (REQUESTS_CALL, "wait", call)
    block.add("uvicorn RequestResponseCycle.send", 2.5, "cpu", send)  # type: ignore[arg-type]
    assert block.main() == ("uvicorn RequestResponseCycle.send", "cpu", send)


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


def test_the_receivers_hook_inside_requests_is_not_the_culprit():
    # receiver.deadline runs inside requests' call (its connection class): a sample taken there
    # blames the handler's call (call_with_requests → Session.get), not the hook.
    class Frame:
        def __init__(self, module: str):
            self.f_globals = {"__name__": module}

    assert not is_own(Frame("receiver.deadline"))  # type: ignore[arg-type]  # only f_globals is read
    assert is_own(Frame("receiver.clients")) and is_own(Frame("lab.metrics"))  # type: ignore[arg-type]
    assert not is_own(Frame("requests.sessions"))  # type: ignore[arg-type]
