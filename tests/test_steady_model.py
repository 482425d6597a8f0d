"""The model in steady state: capacities, queueing formulas, and the simulator against them."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

import pytest

from lab import model
from lab.arrivals import schedule
from models import steady
from models.simulate import simulate

CAPS = model.Caps(pool_limit=100, threads=40)


def answered_at(sends: list[float], latencies: list[float | None]) -> list[float]:
    return sorted(s + x for s, x in zip(sends, latencies) if x is not None)


def throughput(sends: list[float], latencies: list[float | None], start: float, end: float) -> float:
    """Answers per second in [start, end)."""
    return sum(start <= t < end for t in answered_at(sends, latencies)) / (end - start)


# --- capacity ------------------------------------------------------------------------


def test_every_mode_has_a_capacity_formula_and_latency_texts():
    assert set(model.CAPACITY_FORMULAS) == set(steady.LATENCY_BELOW_CAPACITY) == set(model.MODES)
    assert all(set(texts) == {"constant", "poisson"} for texts in steady.LATENCY_BELOW_CAPACITY.values())


@pytest.mark.parametrize(
    "mode, caps, expected",
    [
        ("sync", CAPS, 1 / 2),
        ("async", CAPS, 100 / 2),
        ("async", model.Caps(0, 40), math.inf),
        ("threaded", CAPS, 40 / 2),
        ("threaded", model.Caps(100, 3), 3 / 2),
        ("mixed", model.Caps(0, 40), 1 / 2),
        ("mixed", model.Caps(1, 40), 1 / 4),
        ("mixed", model.Caps(2, 40), 2 / 6),
        ("mixed", CAPS, 100 / 202),
    ],
)
def test_capacity_in_closed_form(mode, caps, expected):
    assert steady.capacity(mode, 2.0, caps) == pytest.approx(expected)
    assert steady.capacity(mode, 0.0, caps) == math.inf  # no per-request cost in the model


@pytest.mark.parametrize("arrivals", ["constant", "poisson"])
@pytest.mark.parametrize(
    "mode, caps",
    [("sync", CAPS), ("async", model.Caps(3, 1)), ("threaded", model.Caps(1, 3)), ("mixed", model.Caps(0, 1)),
     ("mixed", model.Caps(1, 1))],
)
def test_overloaded_the_simulation_answers_at_capacity(mode, caps, arrivals):
    mu = steady.capacity(mode, 0.5, caps)
    sends = schedule(3 * mu, 200, arrivals, seed=4)
    latencies = simulate(mode, sends, 0.5, caps, max_in_flight=50)
    assert throughput(sends, latencies, 20, 200) == pytest.approx(mu, rel=0.02)


@pytest.mark.parametrize("limit", [2, 3, 5, 10])
@pytest.mark.parametrize("rate, arrivals", [(0.95, "constant"), (1.2, "poisson"), (1.5, "constant"), (3.0, "poisson")])
def test_mixed_answers_between_its_guaranteed_and_its_best_capacity(limit, rate, arrivals):
    # Which of the two stable patterns a run settles in depends on its history (models/steady.py).
    caps = model.Caps(limit, 1)
    sends = schedule(rate, 400, arrivals, seed=5)
    achieved = throughput(sends, simulate("mixed", sends, 1.0, caps, max_in_flight=200), 100, 400)
    assert steady.capacity("mixed", 1.0, caps) * 0.98 <= achieved <= min(rate, 1.0) * 1.02


def test_mixed_can_settle_in_either_pattern():
    caps = model.Caps(2, 1)
    for arrivals, rate, expected in [("constant", 0.9, 2 / 3), ("constant", 3.0, 1.0)]:
        sends = schedule(rate, 400, arrivals)
        achieved = throughput(sends, simulate("mixed", sends, 1.0, caps), 100, 400)
        assert achieved == pytest.approx(expected, rel=0.02)


# --- below capacity, constant arrivals -------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async", "threaded"])
@pytest.mark.parametrize("load", [0.1, 0.5, 0.9, 0.99])
def test_constant_arrivals_below_capacity_never_wait(mode, load):
    caps = model.Caps(4, 4)
    rate = load * steady.capacity(mode, 0.5, caps)
    latencies = simulate(mode, schedule(rate, 200 / rate, "constant"), 0.5, caps)
    assert latencies == pytest.approx([0.5] * len(latencies), abs=1e-9)
    assert steady.constant_latency(mode, rate, 0.5, caps) == 0.5


@pytest.mark.parametrize("load", [0.2, 0.5, 0.55, 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.85, 0.9])
def test_mixed_at_constant_arrivals_goes_in_batches(load):
    # 2D up to λD = ½, then batches of ⌈ρ/(1-ρ)⌉: at most (⌈ρ/(1-ρ)⌉ + 1)·D once settled.
    sends = schedule(load, 1500, "constant")
    latencies = simulate("mixed", sends, 1.0, CAPS)
    settled = latencies[len(latencies) // 2:]
    assert max(settled) == pytest.approx(steady.constant_latency("mixed", load, 1.0, CAPS))
    assert min(settled) >= 2.0 - 1e-9
    if load <= 0.5:
        assert max(settled) == pytest.approx(2.0)


def test_constant_latency_is_only_below_capacity():
    with pytest.raises(ValueError, match="not below"):
        steady.constant_latency("sync", 1.0, 1.0, CAPS)


# --- below capacity, Poisson arrivals: M/D/1 and M/D/c ----------------------------------


def test_md1_wait_cdf_closed_forms():
    rate, delay = 0.8, 1.0
    assert steady.md1_wait_cdf(0.0, rate, delay) == pytest.approx(0.2)  # P(no wait) = 1 - ρ
    assert steady.md1_wait_cdf(0.7, rate, delay) == pytest.approx(0.2 * math.exp(0.8 * 0.7))  # t < D
    assert steady.md1_wait_cdf(-1.0, rate, delay) == 0.0
    assert steady.md1_wait_cdf(80.0, rate, delay) == pytest.approx(1.0)
    values = [steady.md1_wait_cdf(t / 4, rate, delay) for t in range(80)]
    assert values == sorted(values)


@pytest.mark.parametrize("load", [0.5, 0.8])
def test_md1_wait_cdf_integrates_to_pollaczek_khinchine(load):
    # E[W] = ∫ (1 - F(t)) dt: ties the CDF to the mean, each from its own formula.
    step, top = 0.05, 40.0
    tail = [1 - steady.md1_wait_cdf(i * step, load, 1.0) for i in range(int(top / step) + 1)]
    integral = step * (sum(tail) - (tail[0] + tail[-1]) / 2)
    assert integral == pytest.approx(steady.md1_mean_wait(load, 1.0), rel=1e-3)
    assert steady.md1_mean_wait(load / 2, 2.0) == pytest.approx(load * 2.0 / (2 * (1 - load)))


def test_md1_wait_quantile():
    assert steady.md1_wait_quantile(0.4, 0.5, 1.0) == 0.0  # half the requests never wait
    w = steady.md1_wait_quantile(0.9, 0.5, 1.0)
    assert steady.md1_wait_cdf(w, 0.5, 1.0) == pytest.approx(0.9, abs=1e-9)
    assert steady.md1_wait_quantile(0.9, 0.25, 2.0) == pytest.approx(2 * w)  # scale-free in D
    with pytest.raises(ValueError):
        steady.md1_wait_quantile(0.5, 1.0, 1.0)  # ρ = 1: no steady state


@pytest.mark.parametrize("load, n", [(0.5, 100_000), (0.8, 300_000)])
def test_sync_under_poisson_arrivals_is_md1(load, n):
    # With connections kept open for ever, requests are read in the order they come: FIFO,
    # one server, service D: M/D/1. With the receiver's keep-alive, a request on a new
    # connection waits a turn more and is overtaken: the same mean (the loop never idles
    # while work waits), a longer tail.
    delay = 0.5
    rate = load / delay
    sends = schedule(rate, n / rate, "poisson", seed=11)
    kept = sorted(simulate("sync", sends, delay, CAPS, keep_alive=math.inf))
    closed = sorted(simulate("sync", sends, delay, CAPS))
    for latencies in (kept, closed):
        waits = [x - delay for x in latencies]
        assert statistics.fmean(waits) == pytest.approx(steady.md1_mean_wait(rate, delay), rel=0.04)
    for q in (0.5, 0.9, 0.99):
        expected = delay + steady.md1_wait_quantile(q, rate, delay)
        assert model.quantile(kept, q) == pytest.approx(expected, rel=0.03), q
    assert model.quantile(closed, 0.99) > 1.05 * model.quantile(kept, 0.99)


def test_erlang_c():
    assert steady.erlang_c(1, 0.8) == pytest.approx(0.8)  # M/M/1: P(wait) = ρ
    assert steady.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert steady.mdc_mean_wait(0.8, 1.0, 1) == pytest.approx(steady.md1_mean_wait(0.8, 1.0))


@pytest.mark.parametrize("load", [0.5, 0.8])
def test_threaded_under_poisson_arrivals_is_mdc(load):
    caps = model.Caps(pool_limit=1, threads=2)
    rate = load * 2
    sends = schedule(rate, 200_000 / rate, "poisson", seed=12)
    mean_wait = statistics.fmean(simulate("threaded", sends, 1.0, caps)) - 1.0
    assert mean_wait == pytest.approx(steady.mdc_mean_wait(rate, 1.0, 2), rel=0.05)  # Cosmetatos
    half_mmc = steady.erlang_c(2, rate) / (2 * (1 - load)) / 2
    assert mean_wait == pytest.approx(half_mmc, rel=0.12)


@pytest.mark.parametrize("mode, caps", [("threaded", model.Caps(1, 40)), ("async", model.Caps(40, 1))])
def test_forty_servers_at_half_load_hardly_wait(mode, caps):
    sends = schedule(20, 2000, "poisson", seed=13)
    mean_wait = statistics.fmean(simulate(mode, sends, 1.0, caps)) - 1.0
    assert mean_wait < 1e-3 and steady.mdc_mean_wait(20, 1.0, 40) < 1e-3


# --- above capacity ------------------------------------------------------------------


@pytest.mark.parametrize("mode, caps", [("sync", CAPS), ("async", model.Caps(4, 1)), ("threaded", model.Caps(1, 4)),
                                        ("mixed", model.Caps(0, 1)), ("mixed", model.Caps(1, 1))])
def test_uncapped_overload_waits_grow_with_the_send_time(mode, caps):
    mu = steady.capacity(mode, 1.0, caps)
    sends = schedule(2 * mu, 100, "constant")
    # Requests on new connections are overtaken (see the M/D/1 test), so compare the
    # answers in the order they come with FIFO's: the k-th answer, within one D, in waves.
    answers = sorted(send + x for send, x in zip(sends, simulate(mode, sends, 1.0, caps)))
    fifo = sorted(send + steady.base_latency(mode, 1.0) + steady.overload_wait(2 * mu, mu, send) for send in sends)
    # mixed with no connector limit reads its whole backlog in waves, and each wave's new
    # connections cost it a turn with no aiohttp call running: about one D a wave behind
    # FIFO, and the waves grow with the backlog (5 D behind after 200 requests).
    slack = 0.03 * fifo[-1] if (mode, caps.pool_limit) == ("mixed", 0) else 1e-9
    for answer, predicted in zip(answers, fifo):
        assert predicted - 1.0 <= answer <= predicted + slack


@pytest.mark.parametrize("arrivals", ["constant", "poisson"])
@pytest.mark.parametrize("mode, caps", [("sync", CAPS), ("async", model.Caps(4, 1)), ("threaded", model.Caps(1, 4)),
                                        ("mixed", model.Caps(0, 1)), ("mixed", model.Caps(1, 1))])
def test_capped_overload_converges_to_little_and_drops_the_excess(mode, caps, arrivals):
    cap, mu = 40, steady.capacity(mode, 1.0, caps)
    rate = 2 * mu
    fill = steady.cap_fill_time(rate, mu, cap)
    sends = schedule(rate, 2 * fill + 300 / mu, arrivals, seed=6)
    latencies = simulate(mode, sends, 1.0, caps, max_in_flight=cap)
    settled = [x for s, x in zip(sends, latencies) if s > 2 * fill]
    answered = [x for x in settled if x is not None]
    assert statistics.fmean(answered) == pytest.approx(steady.overload_latency(mu, cap), rel=0.04)
    dropped = 1 - len(answered) / len(settled)
    assert dropped == pytest.approx(steady.overload_dropped_share(rate, mu), abs=0.02)


def test_overload_helpers():
    assert steady.overload_wait(3.0, 1.0, 10.0) == 20.0
    assert steady.overload_wait(0.5, 1.0, 10.0) == 0.0
    assert steady.overload_dropped_share(4.0, 1.0) == 0.75
    assert steady.overload_dropped_share(0.5, 1.0) == 0.0
    assert steady.overload_latency(40.0, 1000) == 25.0
    assert steady.cap_fill_time(80.0, 40.0, 1000) == 25.0
    assert steady.cap_fill_time(20.0, 40.0, 1000) == math.inf


# --- the sender's cap and steady_state ---------------------------------------------------


def test_the_in_flight_cap_drops_at_send_time():
    # M = 1, D = 1: 0.5 comes while 0 is unanswered; 1.0 comes as 0 is answered: it goes.
    assert simulate("sync", [0.0, 0.5, 1.0, 1.5], 1.0, CAPS, max_in_flight=1) == [1.0, None, 1.0, None]
    assert simulate("async", [0.0, 0.5, 1.0, 1.5], 1.0, CAPS, max_in_flight=2) == [1.0, 1.0, 1.0, 1.0]
    assert simulate("async", [0.0] * 3, 1.0, CAPS, max_in_flight=2) == [1.0, 1.0, None]


def test_simulate_takes_any_order_and_answers_in_it():
    assert simulate("sync", [2.0, 0.0, 0.0], 1.0, CAPS) == [1.0, 1.0, 2.0]
    assert simulate("sync", [], 1.0, CAPS) == []
    assert simulate("mixed", [0.0, 0.0], 0.0, CAPS) == [0.0, 0.0]


def test_steady_state_replays_the_senders_schedule():
    state = steady.steady_state("sync", 2.0, 1.0, CAPS, duration=10, arrivals="constant")
    # Sends at 0, 0.5, ..., 9.5; answers at 1, 2, ..., 20: ten of them within the run.
    # Not in send order: a request sent as an answer frees a connection takes it and goes
    # first (the ones at whole seconds); one sent in between opens a new connection and
    # waits. FIFO's mean, but p50 5.0 where FIFO's is 5.5.
    assert state.offered == 2.0 and state.capacity == 1.0 and state.achieved == 1.0
    assert state.dropped_share == 0.0
    assert (state.p50, state.p99) == (5.0, 10.5)
    assert state.mean == pytest.approx(statistics.fmean(1 + k / 2 for k in range(20)))
    assert state.regime == steady.LATENCY_ABOVE_CAPACITY

    state = steady.steady_state("threaded", 20.0, 1.0, CAPS, duration=30, arrivals="poisson", max_in_flight=5, seed=3)
    sends = schedule(20.0, 30, "poisson", seed=3)
    latencies = simulate("threaded", sends, 1.0, CAPS, max_in_flight=5)
    assert state.dropped_share == sum(x is None for x in latencies) / len(sends) > 0
    assert state.regime == steady.LATENCY_BELOW_CAPACITY["threaded"]["poisson"]


def test_steady_state_below_capacity_is_about_d():
    state = steady.steady_state("async", 50.0, 1.0, CAPS, duration=30, arrivals="constant")
    assert (state.p50, state.p99, state.mean) == pytest.approx((1.0, 1.0, 1.0))
    assert state.achieved == (29 * 50 + 1) / 30  # sends at k/50 are answered at k/50 + 1 ≤ 30


# --- the loop's turns and new connections (models/simulate.py) ----------------------------


def test_a_request_on_a_new_connection_waits_a_turn_more():
    # D = 1, sync. 0.25 and 1.25 find every connection busy and open one; 1.0 and 2.0 come
    # as an answer frees one. 1.25 comes during 1.0's blocking call, but its connection is
    # accepted at the poll after it and read a turn later, by when 2.0 has taken the
    # connection 0.25's answer freed and is running: 2.0 is answered before 1.25.
    sends = [0.0, 0.25, 1.0, 1.25, 2.0]
    answers = [send + x for send, x in zip(sends, simulate("sync", sends, 1.0, CAPS))]
    assert answers == [1.0, 2.0, 3.0, 5.0, 4.0]


@pytest.mark.parametrize("name", ["mixed-0.8x", "mixed-1.0x"])
def test_the_simulation_replays_a_measured_mixed_run(name):
    # Mixed mode is where a loop that runs each step the moment it is ready parts from the
    # measurements (p50 3.37 s against 4.26 s measured at 0.8x); turns and new connections
    # account for nearly every request of the run, one by one.
    run = json.loads((Path(__file__).parent / "data" / f"{name}.json").read_text())
    sends, measured = zip(*run["records"])
    assert list(sends) == pytest.approx(schedule(run["offered"], 20.0, "poisson", seed=1), abs=1e-5)
    simulated = simulate("mixed", sends, 1.0, CAPS, max_in_flight=10)
    close = sum(1 for m, s in zip(measured, simulated) if abs(m - s) <= 0.1)
    assert close >= 0.75 * len(measured)
    assert model.quantile(sorted(simulated), 0.5) == pytest.approx(model.quantile(sorted(measured), 0.5), rel=0.05)


@pytest.mark.parametrize("mode, plain, pooled", [
    ("sync", 1 / 1.02, 1.0), ("async", 50.0, 100.0), ("mixed", 100 / (101 + 2), 100 / 101),
    ("threaded", steady.shared_gil(40, 1.0, 0.02), 40 / 1.02), ("def", steady.shared_gil(40, 1.0, 0.02), 40 / 1.02)])
def test_work_caps_every_mode_at_what_computes_it(mode, plain, pooled):
    # c = 20 ms: one loop (or the GIL) computes 50 requests a second; 2 processes on 2 cores, 100
    caps = model.Caps(pool_limit=100, threads=40, cpu=0.02)
    assert steady.capacity(mode, 1.0, caps) == pytest.approx(plain)
    assert steady.capacity(mode, 1.0, dataclasses.replace(caps, processes=2, cores=2)) == pytest.approx(pooled)
    assert steady.capacity(mode, 0.0, caps) == pytest.approx(50.0)  # no wait: the work alone
    # threads overlap waiting, not computing: T = 1000 threads are still capped at 1/c
    assert steady.capacity("threaded", 1.0, dataclasses.replace(caps, threads=1000)) == pytest.approx(50.0)


def brute_force_closed_network(threads: int, delay: float, cpu: float) -> float:
    """T threads going round a wait D and a processor-sharing GIL of c, by the exact Markov chain of
    the number computing (D and c exponential: the network's throughput is the same for any)."""
    # balance: p(k) ∝ T!/(T-k)! · (c/D)^k, throughput = (1 - p(0)) / c
    weights = [1.0]
    for k in range(1, threads + 1):
        weights.append(weights[-1] * (threads - k + 1) * cpu / delay)
    return (1 - weights[0] / math.fsum(weights)) / cpu


@pytest.mark.parametrize("threads, delay, cpu", [(1, 1.0, 0.02), (5, 0.25, 0.05), (40, 1.0, 0.02),
                                                 (40, 0.25, 0.0055), (40, 1.0, 0.0225), (200, 1.0, 0.005)])
def test_threads_share_the_gil_as_a_closed_network_says(threads, delay, cpu):
    # The mean value analysis is exact for the closed network: the same as its Markov chain
    mu = steady.shared_gil(threads, delay, cpu)
    assert mu == pytest.approx(brute_force_closed_network(threads, delay, cpu), rel=1e-9)
    assert mu <= min(threads / (delay + cpu), 1 / cpu) * (1 + 1e-12)  # not above the threads' cap nor the GIL's


def test_the_shared_gil_costs_most_at_the_knee_and_nothing_far_from_it():
    # T = 40, D = 1 s: the knee is c = D/(T - 1) ≈ 25.6 ms, where T/(D + c) = 1/c
    loss = {ms: steady.shared_gil(40, 1.0, ms / 1000) / min(40 / (1 + ms / 1000), 1000 / ms)
            for ms in (1, 20, 25.6, 40, 100)}
    assert loss[1] > 0.999 and loss[100] > 0.999  # the threads' cap, then the GIL's
    assert loss[25.6] < 0.9 < loss[20] < 0.97 and loss[25.6] < loss[40] < 0.999
    assert steady.shared_gil(40, 0.0, 0.02) == pytest.approx(50.0)  # nothing to wait for: the GIL never idles
    assert steady.shared_gil(1, 1.0, 0.02) == pytest.approx(1 / 1.02)  # one thread: its call, then its work
    with pytest.raises(ValueError, match="T ≥ 1, c > 0"):
        steady.shared_gil(0, 1.0, 0.02)


@pytest.mark.parametrize("mode", model.MODES)
@pytest.mark.parametrize("processes", [0, 2])
def test_overloaded_with_work_the_simulation_answers_at_the_capacity_with_work(mode, processes):
    # offered twice the closed form's μ with c = 20 ms, the simulated receiver answers at μ
    caps = model.Caps(pool_limit=100, threads=40, cpu=0.02, processes=processes, cores=2)
    mu = steady.capacity(mode, 0.25, caps)
    sends = schedule(2 * mu, 30.0, "constant")
    achieved = throughput(sends, simulate(mode, sends, 0.25, caps, max_in_flight=math.ceil(5 * mu)), 10.0, 30.0)
    low = 0.9 if mode == "mixed" else 0.97  # mixed: its guaranteed pattern, up to 1/(D + c) (without work, too)
    assert low * mu <= achieved <= 1.12 * mu
