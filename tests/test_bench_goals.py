"""The benchmark's goals: PASS, FAIL or not measured, from results of a known shape."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import goals, work
from bench.results import Goal, Results
from models import steady


def results(makespan_ratio: float = 1.02, sender_rounds: tuple[float, ...] = (16000, 15000, 17000)) -> dict:
    bursts = [{"label": m, "mode": m, "n": n, "delay": 1.0, "caps": {"pool_limit": 100, "threads": 40}, "warm": False,
               "makespan": n * makespan_ratio if m == "sync" else 1.0 * makespan_ratio,
               "model": n if m == "sync" else 1.0, "reason": None} for m in ("sync", "async") for n in (1, 2, 10, 100)]
    bursts.append({"label": "async L=0", "mode": "async", "n": 1000, "delay": 1.0, "warm": True,
                   "caps": {"pool_limit": 0, "threads": 40}, "makespan": 1.2, "model": 1.0, "reason": None})
    rates = [{"mode": "sync", "fraction": f, "capacity": 1.0, "window_rate": min(f, 1.0) * 0.97, "arrivals": "poisson",
              "p50": 1.1, "model": {"p50": 1.0}} for f in (0.5, 0.8, 2.0)]
    servers = {"receiver": 3800, "receiver, metrics off": 3850, "FastAPI proxy": 3600, "aiohttp.web proxy": 7500}
    throughput = {name: {"rps": rps, "rounds": [{"rps": rps}] * 3} for name, rps in servers.items()}
    tools = {"sender": {"rps": 16000, "rounds": list(sender_rounds)},
             "Locust FastHttpUser": {"rps": 9000, "rounds": [9000, 10000, 8000]},
             "bare aiohttp loop": {"rps": 17000, "rounds": [17000, 17000, 17000]}}
    return {"knobs": {"delay": 1.0, "modes": ["sync", "async"]}, "bursts": bursts, "rates": rates,
            "passthrough": {"configs": throughput}, "loadgen": {"results": tools}}


def check(results: dict) -> dict[str | None, Goal]:
    """The goals of results of that shape (read as a saved run is), by name."""
    return {g.name: g for g in goals.check(Results.from_json(results))}


def test_goals_pass_fail_and_not_measured():
    checked = check(results())
    assert checked["sync: makespan, N = 100"].passed is True
    assert checked["sync: capacity"].passed is True  # 0.97 of the model
    assert checked["sync: p50 at 0.8× capacity"].passed is True  # 1.1 of the model, within ±20%
    assert checked["async: capacity"].passed is None  # no rate run for async: said, not guessed
    assert checked["async: makespan, N = 1,000, connector limit ≥ N"].passed is True
    assert "opens the receiver's connection pool" in checked["async: makespan, N = 1,000, connector limit ≥ N"].detail
    assert checked["receiver (async, zero delay) vs the plain FastAPI proxy"].passed is True
    assert checked["receiver (async, zero delay) vs the aiohttp.web proxy"].passed is False  # 0.51×
    assert checked["receiver with metrics vs without"].passed is True  # 0.99×
    assert goals.verdict(list(checked.values()))[1] == 1


def test_a_makespan_off_by_more_than_ten_percent_fails():
    checked = check(results(makespan_ratio=1.11))
    assert checked["sync: makespan, N = 10"].passed is False
    assert checked["sync: makespan, N = 10"].value == 1.11


def test_ratios_are_medians_of_same_round_ratios():
    # rounds 16k/9k, 15k/10k, 17k/8k: the median of the ratios (1.78), not 16k/9k of the medians
    ratio = goals.relative(Results.from_json(results()).loadgen.results, "sender", "Locust FastHttpUser")
    assert abs(ratio - 16000 / 9000) < 1e-9
    slow = Results.from_json(results(sender_rounds=(13000, 14000, 12500))).loadgen.results
    assert abs(goals.relative(slow, "sender", "Locust FastHttpUser") - 13000 / 9000) < 1e-9


def test_side_by_side_ratios_decide_the_pass_through_goals_when_measured():
    # Separate runs say 3800 vs 3850 (0.99×); side by side on one core the metrics cost 7%: that decides.
    measured = results()
    measured["passthrough"]["paired"] = {
        "receiver vs receiver, metrics off": {"ratio": 0.93, "rounds": [0.92, 0.93, 0.94],
                                              "cpu_us": {"receiver": 215.0, "receiver, metrics off": 200.0}}}
    checked = check(measured)
    goal = checked["receiver with metrics vs without"]
    assert goal.passed is False and goal.value == 0.93
    assert "215 vs 200 µs" in goal.measured and "side by side on one core" in goal.detail
    # a pair not measured side by side falls back to the separate runs
    assert checked["receiver (async, zero delay) vs the plain FastAPI proxy"].passed is True


def warm_overhead_burst(loop_cpu: float) -> dict:
    """The async burst of 100 with no connector limit (after one of its own), its loop's CPU seconds."""
    return {"label": "async L=0", "mode": "async", "n": 100, "delay": 1.0, "warm": True, "loop_cpu": loop_cpu,
            "caps": {"pool_limit": 0, "threads": 40}, "makespan": 1.05, "model": 1.0, "reason": None}


def test_the_scale_burst_is_predicted_with_the_receivers_own_cost_c0():
    # c₀ = 0.3 s of the loop's CPU over the async burst of 100: 3 ms a request; N = 1,000 → D + 1,000·c₀ = 4 s
    data = results()
    data["bursts"].append(warm_overhead_burst(0.3))
    for makespan, passed in ((3.7, True), (4.39, True), (4.5, False)):
        next(b for b in data["bursts"] if b["n"] == 1000)["makespan"] = makespan
        goal = check(data)["async: makespan, N = 1,000, predicted with c₀"]
        assert goal.passed is passed and "c₀ = 3000 µs" in goal.measured, goal
    assert check(results())["async: makespan, N = 1,000, predicted with c₀"].passed is None  # no loop_cpu: said


def work_case(mode: str, window_rate: float, processes: int = 0) -> dict:
    return {"label": f"{mode}, c = 20 ms" + (f", P = {processes}" if processes else ""), "mode": mode,
            "cpu_ms": 20.0, "processes": processes, "cores": 2, "threads": 40, "pinned": not processes,
            "burst": {"n": 10, "delay": 1.0, "makespan": 1.25, "model": 1.2,
                      "caps": {"pool_limit": 100, "threads": 40}},
            "rate": {"window_rate": window_rate, "capacity": 100.0 if processes else 50.0}}


def test_work_goals_hold_bursts_and_capacities_to_the_model_with_c_and_c0():
    data = results()
    data["work"] = [work_case("async", 47.0), work_case("threaded", 30.0), work_case("threaded", 92.0, processes=2)]
    checked = check(data)
    assert checked["async, c = 20 ms: makespan, N = 10"].passed is True  # 1.25 vs 1.2: 1.04×
    assert checked["async, c = 20 ms: capacity"].passed is True  # 47 vs 1/c = 50
    assert checked["threaded, c = 20 ms: capacity"].passed is False  # 30 vs 50
    assert checked["threaded, c = 20 ms, P = 2: capacity"].passed is True  # 92 vs P/c = 100
    assert checked["threaded, c = 20 ms, P = 2: capacity above 1/c"].passed is True  # 92 > 50
    assert checked["threaded, c = 20 ms, P = 2: capacity above 1/c"].value == pytest.approx(92.0 * 0.02)
    assert "threaded, c = 20 ms: capacity above 1/c" not in checked  # without processes: no such goal
    data["bursts"].append(warm_overhead_burst(0.5))  # c₀ = 5 ms: the loop computes c + c₀ = 25 ms a request, 40/s
    goal = check(data)["async, c = 20 ms: capacity"]
    assert goal.passed is False and "40/s" in goal.measured and "c₀ = 5000 µs" in goal.detail


def test_a_pool_of_processes_is_held_to_the_cores_the_rest_leaves_it():
    # P = 2 on 2 cores, while the receiver's loop and threads, upstream and the sender keep 0.4
    # of them busy: P' = 1.6, and at c = 20 ms the model's capacity is 80/s, not P/c = 100/s
    data = results()
    pooled = work_case("threaded", 76.0, processes=2)
    data["work"] = [{**pooled, "busy": {"receiver": 0.25, "pool": 1.5, "upstream": 0.05, "sender": 0.1}}]
    goal = check(data)["threaded, c = 20 ms, P = 2: capacity"]
    assert goal.passed is True and "76/s vs 80/s (0.950×)" in goal.measured, goal
    assert "P' = 1.60, the cores left after receiver 0.25, upstream 0.05, sender 0.10 (the pool 1.50)" in goal.detail
    data["work"] = [{**pooled, "busy": {"receiver": 0.25, "pool": 1.5, "upstream": 0.05, "sender": 0.1},
                     "rate": {**pooled["rate"], "window_rate": 60.0}}]  # the pool idles on what it is left: FAIL
    assert check(data)["threaded, c = 20 ms, P = 2: capacity"].passed is False
    data["work"] = [pooled]  # the cores not measured: P/c, as the model says on its own
    assert "vs 100/s" in check(data)["threaded, c = 20 ms, P = 2: capacity"].measured


def test_busy_counts_the_cores_a_process_keeps_busy_over_its_window():
    # one process computes, one sleeps, and a child of this process ends meanwhile (as the
    # sender does): one reads a core (or the share a busy machine gives it), the other next to none
    spin = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 4\n"
                             "while time.monotonic() < end: pass"])
    rest = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(4)"])
    try:
        with work.Busy(lambda: {"spin": [spin.pid], "rest": [rest.pid], "gone": [2**22 + 1]}) as busy:
            subprocess.run([sys.executable, "-c", "import time\nend = time.monotonic() + 1\n"
                            "while time.monotonic() < end: pass"], check=True)
        assert busy.busy is not None and busy.busy["spin"] > 0.1 and busy.busy["rest"] < 0.05, busy.busy
        assert busy.busy["sender"] > 0.1, busy.busy  # the child that ended: its rusage
        assert busy.busy["gone"] == 0  # a process that is not there counts nothing
    finally:
        spin.kill()
        rest.kill()
        spin.wait()
        rest.wait()


def test_threads_with_work_are_held_to_the_shared_gil_with_the_receivers_measured_cpu():
    # threaded at c = 20 ms: the receiver kept 0.75 of a core busy over 30 s and answered 1,000, so
    # 22.5 ms of GIL a request (2.5 ms of its own); 40 threads sharing it: 36.6/s, not 1/c nor T/(D + c)
    data = results()
    threaded = work_case("threaded", 34.0)
    threaded["rate"]["ok"] = 1000
    data["work"] = [{**threaded, "busy": {"receiver": 0.75, "pool": 0.0, "upstream": 0.02, "sender": 0.03},
                     "busy_seconds": 30.0}]
    goal = check(data)["threaded, c = 20 ms: capacity"]
    mu = steady.shared_gil(40, 1.0, 0.0225)
    assert 36 < mu < 37 and f"34/s vs {mu:.3g}/s" in goal.measured and goal.passed is True, goal
    assert "c + c_T = 22.5 ms a request" in goal.detail and "c_T = 2.5 ms its own" in goal.detail, goal
    data["work"][0]["rate"] = {**threaded["rate"], "window_rate": 32.0}  # 0.874×
    assert check(data)["threaded, c = 20 ms: capacity"].passed is False
    del data["work"][0]["busy_seconds"]  # not measured: the model with c alone (and c₀ where measured)
    assert "c_T" not in check(data)["threaded, c = 20 ms: capacity"].detail


def test_c0_leaves_out_the_loops_own_ticks_read_with_no_request():
    # the burst of 100: 0.09 s of loop CPU over 1.5 s, while the idle loop costs 0.02 s a second:
    # 0.03 s were its ticks, so c₀ = 0.06 s / 100 = 600 µs; N = 1,000 → D + 1,000·c₀ = 1.6 s
    data = results()
    data["bursts"].append({**warm_overhead_burst(0.09), "loop_seconds": 1.5, "loop_idle": 0.02})
    next(b for b in data["bursts"] if b["n"] == 1000)["makespan"] = 1.55
    goal = check(data)["async: makespan, N = 1,000, predicted with c₀"]
    assert "c₀ = 600 µs" in goal.measured and "vs 1.600 s" in goal.measured and goal.passed is True, goal
    assert "less its own ticks" in goal.detail


def test_every_recorded_burst_of_a_warm_series_first_reads_the_idle_loop(monkeypatch, tmp_path):
    """IDLE_SECONDS with no request before each recorded burst of a warm series, none before its warm one."""
    from bench import bursts
    from lab import model

    def sent(receivers, out, load_cpus, timeout, SENDER_CONCURRENCY, **env):
        n = int(SENDER_CONCURRENCY)
        return {"targets": [{"mode": "async", "makespan": 1.0, "results": [{"status": 200, "seconds": 1.0}] * n}]}

    slept: list[float] = []
    monkeypatch.setattr(bursts, "sender", sent)
    monkeypatch.setattr(bursts.time, "sleep", slept.append)
    series = bursts.Series("async L=0", "async", model.Caps(pool_limit=0, threads=40),
                           (goals.OVERHEAD_N, goals.SCALE_N), warm=True)
    cpu = iter(range(100))
    rows = bursts.sweep([series], 1.0, 60.0, lambda s: "http://receiver", tmp_path, None, lambda *_: None,
                        loop_cpu=lambda: float(next(cpu)))
    assert [(r.n, r.loop_idle is not None, r.loop_cpu) for r in rows] == [(goals.OVERHEAD_N, True, 1.0),
                                                                           (goals.SCALE_N, True, 1.0)]
    assert slept == [bursts.IDLE_SECONDS] * 2
