"""RECEIVER_CPU_MS: computing blocks too. A burst of N through real processes, each request
doing c of pure-Python work after its call, against the model (lab.model.work_times)."""

from __future__ import annotations

import re
import time

import pytest

from lab import model
from receiver.cpu import compute
from tests.conftest import scrape, value
from tests.test_modes import CONSTANT, RELATIVE, caps_of
from tools.processes import sender_once

D, C = 0.5, 0.02  # upstream's delay; each request's work (RECEIVER_CPU_MS=20)


def test_the_work_is_its_threads_cpu_time():
    wall, cpu = time.perf_counter(), time.thread_time()
    compute(C * 1000)
    assert C <= time.thread_time() - cpu < C + 0.005
    assert time.perf_counter() - wall >= C


@pytest.mark.parametrize("mode, n, env", [
    pytest.param("sync", 4, {}, id="sync"),
    pytest.param("async", 10, {}, id="async"),
    pytest.param("threaded", 10, {}, id="threaded"),
    pytest.param("def", 10, {}, id="def"),
    pytest.param("threaded", 10, {"RECEIVER_CPU_PROCESSES": "2"}, id="threaded-P2"),
    pytest.param("async", 10, {"RECEIVER_CPU_PROCESSES": "2"}, id="async-P2"),
])
@pytest.mark.cores  # the model gives the loop (or the GIL) a core, and P processes P cores: run alone (make test)
def test_a_burst_that_computes_takes_what_the_model_says(start, mode, n, env):
    upstream = start("upstream", UPSTREAM_DELAY=str(D), LOG_LEVEL="warning")
    measured, expected, caps, line = computing_burst(start, upstream, mode, n, C, **env)
    assert (caps.cpu, caps.processes) == (C, int(env.get("RECEIVER_CPU_PROCESSES", 0)))
    assert expected * (1 - 0.05) <= measured <= expected * (1 + RELATIVE) + CONSTANT, line
    if mode in ("threaded", "def") and not env:
        # threads overlap the waiting, not the computing: no sooner than the loop doing it all
        assert measured >= model.makespan("async", n, D, caps) * (1 - 0.05), line[0]


def test_threads_that_compute_make_upstream_look_slower_to_the_receiver(start):
    """The receiver times a call until its thread runs again, and a thread back from its call
    waits for the GIL while other threads compute: the receiver's own histogram reads upstream
    slower than upstream's says it answered. At 60 requests/s, above the GIL's 1/c = 50/s."""
    upstream = start("upstream", UPSTREAM_DELAY=str(D), LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="threaded", UPSTREAM_URL=upstream.url,
                     RECEIVER_CPU_MS=f"{C * 1000:g}", LOG_LEVEL="warning")
    done = sender_once(receiver.url, timeout=60, SENDER_RATE="60", SENDER_DURATION="4")
    assert done.returncode == 0, done.stdout + done.stderr
    calls, served = scrape(receiver.metrics_url), scrape(upstream.metrics_url)
    ok = {"client": "requests", "outcome": "ok"}
    called = value(calls, "receiver_upstream_call_duration_seconds_count", **ok)
    answered = value(served, "upstream_http_request_duration_seconds_count", route="/work", caller="threaded")
    assert called == answered == 240, (called, answered)
    took = value(served, "upstream_http_request_duration_seconds_sum", route="/work", caller="threaded") / answered
    timed = value(calls, "receiver_upstream_call_duration_seconds_sum", **ok) / called
    assert took == pytest.approx(D, abs=0.02)
    assert timed > took + 2 * C, (timed, took)  # more than two requests' work: each waited for the GIL


def computing_burst(start, upstream, mode: model.Mode, n: int, c: float,
                    **env: str) -> tuple[float, float, model.Caps, str]:
    """A burst of n to a new receiver doing c of work a request: (measured makespan, model's, caps, summary line)."""
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, RECEIVER_CPU_MS=f"{c * 1000:g}",
                     LOG_LEVEL="warning", **env)
    caps = caps_of(receiver)
    expected = model.makespan(mode, n, D, caps)
    done = sender_once(receiver.url, timeout=60, SENDER_CONCURRENCY=str(n), LOG_LEVEL="info")
    line = re.search(r"makespan=([\d.]+)s mode=\w+ predicted=([\d.]+)s \[(.+?)\] failed=0", done.stdout)
    assert line, done.stdout + done.stderr
    assert float(line[2]) == pytest.approx(expected, abs=0.001) and f"c={c * 1000:g}ms" in line[3], line[0]
    return float(line[1]), expected, caps, line[0]


@pytest.mark.cores  # the model's P' = 2 needs 2 free cores: make test runs this alone
@pytest.mark.parametrize("mode", ["async", "threaded"])
def test_processes_compute_side_by_side_sooner_than_the_loop_or_the_gil(start, mode: model.Mode):
    """Side by side, in one run (the machine's speed drifts): c = 50 ms, N = 10, with and without
    2 processes. The model: D + N·c = 1.0 s without, D + ⌈N/2⌉·c = 0.75 s with (on 2 free cores)."""
    upstream = start("upstream", UPSTREAM_DELAY=str(D), LOG_LEVEL="warning")
    alone, alone_model, _, alone_line = computing_burst(start, upstream, mode, 10, 0.05)
    pooled, pooled_model, caps, pooled_line = computing_burst(start, upstream, mode, 10, 0.05,
                                                              RECEIVER_CPU_PROCESSES="2")
    assert pooled_model < alone_model and caps.processes == 2
    assert pooled_model * (1 - 0.05) <= pooled <= pooled_model * (1 + RELATIVE) + CONSTANT, pooled_line
    assert pooled < alone, (pooled_line, alone_line)
