"""The model in steady state: an open-loop sender offers λ requests/s (lab.arrivals) for a duration,
with at most M of them unanswered at once (max_in_flight); μ is the mode's capacity.

capacity() derives μ from the mode's record (lab.model.MODES_), steady_state() simulates a
run (models/simulate.py) and says what the latency is below and above μ; the queueing
formulas (M/D/1, M/D/c, overload) are what the simulation is checked against. Tooling: the
tests and the benchmark use it, the services do not (it is not in the images).

What the model says of a steady run (ρ = λ/μ, μ = capacity()):

Below capacity, constant arrivals. sync, async, threaded, def: D, nothing ever waits.
mixed: 2D while λD ≤ 1/2. Above that, a request that arrives during a blocking call
is read only after it, behind every continuation that was ready before it; so
requests go in batches: read together, the loop idles D while their aiohttp calls
run, then runs their blocking calls one after another while the next batch arrives.
A batch of k per (k+1)·D keeps up with λ when k ≥ λD/(1-λD), so it settles at
k = ⌈λD/(1-λD)⌉ (needs k ≤ L: mixed's capacity) and the latency at up to
(k+1)·D: 3D at λD = 0.6, 5D at 0.8, 10D at 0.9 (constant_latency()).

Below capacity, Poisson arrivals: queueing even below capacity. sync is M/D/1 (one
server, service D): latency = D + W, mean W = ρD/(2(1-ρ)) (Pollaczek–Khinchine,
md1_mean_wait). It is FIFO, and P(W ≤ t) is Erlang/Crommelin's (md1_wait_cdf,
md1_wait_quantile), while every request comes on a connection kept open; a request
that needs a new one takes a loop turn more and is overtaken (models/simulate.py): the
same mean, a longer tail, which the simulation gives. async, threaded and def are M/D/c
with c = L, T or K: mean W by Cosmetatos' correction of half the M/M/c (Erlang C) wait
(mdc_mean_wait): 0.009·D for c = 40 and 0.0006·D for c = 100 at ρ = 0.8, 1e-6·D at
ρ = 0.5: latency ≈ D, though a run's p99 shows some queueing near ρ = 0.8. mixed has no
closed form (reads and continuations queue on one loop, in batches): the simulation gives it.

Above capacity (λ > μ): no steady state. Without a cap the backlog grows by λ-μ per
second and a request sent at t waits about t·(λ/μ - 1) (overload_wait) on top of
base_latency(). With the sender's cap M the backlog stops at M after M/(λ-μ) seconds
(cap_fill_time); from then on a share 1 - μ/λ is dropped (overload_dropped_share)
and the answered requests take M/μ (Little's law: M in flight, μ answers per second;
overload_latency). A run shorter than the fill time only shows the uncapped growth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext

from lab import arrivals as schedules
from lab.arrivals import Arrivals
from lab.model import MODES_, Caps, Mode, quantile
from models.simulate import simulate

# What the latency is below capacity, by arrivals, in docs/model.md's words (each mode's record).
LATENCY_BELOW_CAPACITY: dict[Mode, dict[Arrivals, str]] = {
    mode: dict(m.latency_below_capacity) for mode, m in MODES_.items()
}
LATENCY_ABOVE_CAPACITY = (
    "grows by t·(λ/μ − 1) for a request sent at t; with an in-flight cap M: → M/μ, "
    "share 1 − μ/λ dropped (after M/(λ−μ) s)"
)


def capacity(mode: Mode, delay: float, caps: Caps) -> float:
    """Answers per second the mode sustains: μ (math.inf when nothing caps it, or D = 0).

    sync      μ = 1/D   the loop does one request at a time and each holds it D.
    async     μ = L/D   L connections, each busy D per request and free again the moment
                        its answer is in (the loop is never busy); L = 0: no limit, ∞.
    threaded  μ = T/D   T threads, each busy D per request.
    def       μ = K/D   K anyio tokens, each held D per request.
    mixed     μ = L/((L+1)·D), guaranteed (1/D for L = 0, 1/(2D) for L = 1), up to 1/D.
        The loop is held D per request by the requests call, so never more than 1/D. The
        aiohttp calls run off the loop and can hide behind other requests' blocking
        calls: in a burst with L ≥ 2 the waiter that request k-L's continuation wakes
        starts its call right after that continuation's blocking call, overlapping the
        next one, and t_k = (k+1)·D: 1/D. But a connection is released only when the
        loop runs the answer's continuation (which is where the blocking call starts),
        and the waiter it wakes queues behind every continuation that was ready before
        it. Under a backlog those are the other L-1 requests holding connections, so the
        L woken calls start together after L blocking calls, and the loop then idles D
        waiting for them: L answers per (L+1)·D. L = 1 always works this way: one
        aiohttp wait, then one blocking call, in a row (2D per request, the burst's
        2k·D). For L ≥ 2 both patterns are stable, and which one a run settles in
        depends on its history (the simulator shows both); capacity() returns the one
        that holds whatever the history. With L = 100 they differ by 1%.

    W workers (caps.workers): W times one worker's, the requests spread evenly.

    With c of work per request (caps.cpu, RECEIVER_CPU_MS) the work caps it too: see
    with_work(). D = 0 and no work give ∞: the model has no per-request CPU cost of its own
    (parsing, logging, loopback round trips: about a millisecond), which is what bounds every
    mode in practice.
    """
    if delay < 0:
        raise ValueError(f"delay is at least 0 seconds, got {delay!r}")
    if caps.cpu > 0:
        return with_work(mode, delay, caps) * caps.workers
    if delay == 0:
        return math.inf
    return MODES_[mode].capacity(delay, caps) * caps.workers


def _per(count: int, seconds: float) -> float:
    """count jobs every `seconds`, per second (count 0: no cap)."""
    return math.inf if count <= 0 or seconds <= 0 else count / seconds


def with_work(mode: Mode, delay: float, caps: Caps) -> float:
    """One worker's μ when each request also does c = caps.cpu of work (a GIL-holding loop).

    Without processes the work runs on the loop or under the GIL, one request's at a time,
    so no mode exceeds 1/c, and where the work holds what the call held it adds to it:
      sync      1/(D + c)          the loop: the call, then the work
      async     min(L/D, 1/c)      the calls overlap, the work queues on the loop
      mixed     L/((L+1)·D + L·c)  its guaranteed pattern (above), the loop also computing; 1/(D+c) if L = 0
      threaded  shared_gil(T, D, c) each thread holds its request through its call and its
                                   share of the GIL: below T/(D + c) and below 1/c
      def       shared_gil(K, D, c)
    With P processes, P' = min(P, cores) of them compute at once: the work caps at P'/c,
    and the loop holds only the calls (sync 1/D, mixed as without work) while a thread
    still waits for its request's work (T/(D + c)).
    """
    c, limit = caps.cpu, caps.pool_limit
    spec = MODES_[mode]
    if spec.shape == "thread" and not caps.processes:
        return shared_gil(spec.pool(caps), delay, c)
    on_loop = 0.0 if caps.processes else c  # the work's time on the loop, beside its calls
    held = {"sync": _per(1, delay + on_loop), "async": _per(limit, delay),
            "mixed": _per(limit, (limit + 1) * delay + limit * on_loop) if limit > 0 else _per(1, delay + on_loop),
            "threaded": _per(caps.threads, delay + c), "def": _per(caps.tokens, delay + c)}[mode]
    return min(held, caps.computing / c)


def shared_gil(threads: int, delay: float, cpu: float) -> float:
    """Answers per second of T busy threads that each wait D (the call), then compute c under one GIL.

    CPython hands the GIL from a computing thread to a waiting one every switch interval
    (sys.getswitchinterval(), 5 ms), so threads that compute at once share it in turns:
    a processor-sharing server. A thread holds its request through its call and its share
    of the GIL, and the more threads compute, the longer each one's c takes. With every
    thread busy (a backlog), that is a closed network of T jobs going round a delay D and a
    processor-sharing server of c, and mean value analysis gives its throughput exactly
    (the network has product form whatever the distributions of D and c):
        R(n) = c·(1 + Q(n−1)),  X(n) = n/(D + R(n)),  Q(n) = X(n)·R(n),  n = 1..T;  μ = X(T)
    Below both T/(D + c), the threads' cap if the work never waited, and 1/c, the GIL's; close
    to the smaller far from the knee T·c = D + c, and most below both at it.
    """
    if threads < 1 or cpu <= 0 or delay < 0:
        raise ValueError(f"shared_gil needs T ≥ 1, c > 0 and D ≥ 0, got T={threads}, c={cpu}, D={delay}")
    queue, rate = 0.0, 0.0
    for n in range(1, threads + 1):
        residence = cpu * (1 + queue)
        rate = n / (delay + residence)
        queue = rate * residence
    return rate


def base_latency(mode: Mode, delay: float) -> float:
    """A request's latency when nothing else is in the receiver: its upstream calls, in a row."""
    return MODES_[mode].upstream_calls * delay


def constant_latency(mode: Mode, rate: float, delay: float, caps: Caps) -> float:
    """The longest latency at constant arrivals below capacity, once settled (steady_state())."""
    if not rate < capacity(mode, delay, caps):
        raise ValueError(f"{rate} requests/s is not below {mode}'s capacity")
    if MODES_[mode].shape != "call, block" or delay == 0:  # mixed: the loop blocks after each call
        return delay
    busy = rate * delay  # the loop's utilization
    batch = max(1, math.ceil(busy / (1 - busy) - 1e-9))
    return (batch + 1) * delay


def _utilization(rate: float, delay: float, servers: int = 1) -> float:
    busy = rate * delay / servers
    if not 0 <= busy < 1:
        raise ValueError(f"a queue needs 0 ≤ λD/c < 1, got {busy!r}")
    return busy


def md1_mean_wait(rate: float, delay: float) -> float:
    """M/D/1 mean wait before service (Pollaczek–Khinchine): ρD/(2(1-ρ)), ρ = λD."""
    busy = _utilization(rate, delay)
    return busy * delay / (2 * (1 - busy))


def md1_wait_cdf(t: float, rate: float, delay: float) -> float:
    """M/D/1 P(W ≤ t) (Erlang, Crommelin): (1-ρ) Σ_{k=0}^{⌊t/D⌋} [λ(kD-t)]^k/k! · e^{-λ(kD-t)}.

    The terms alternate in sign and grow like e^{λt}, so the sum runs in decimal
    arithmetic with enough digits to survive the cancellation.
    """
    busy = _utilization(rate, delay)
    if t < 0:
        return 0.0
    if delay == 0 or rate == 0:
        return 1.0
    with localcontext() as context:
        context.prec = 30 + int(2 * rate * t / math.log(10))
        lam, when, d = Decimal(rate), Decimal(t), Decimal(delay)
        total = (lam * when).exp()  # k = 0
        factorial = Decimal(1)
        for k in range(1, int(t // delay) + 1):
            factorial *= k
            x = lam * (k * d - when)
            total += x**k / factorial * (-x).exp()
        value = float((1 - Decimal(busy)) * total)
    return min(1.0, max(0.0, value))


def md1_wait_quantile(q: float, rate: float, delay: float) -> float:
    """The M/D/1 wait W with P(W ≤ w) = q, by bisection on md1_wait_cdf (0 for q ≤ 1-ρ)."""
    if not 0 <= q < 1:
        raise ValueError(f"a quantile is in [0, 1), got {q!r}")
    busy = _utilization(rate, delay)
    if q <= 1 - busy or delay == 0:
        return 0.0
    low, high = 0.0, delay
    while md1_wait_cdf(high, rate, delay) < q:
        low, high = high, 2 * high
    while high - low > 1e-9 * delay:
        middle = (low + high) / 2
        low, high = (middle, high) if md1_wait_cdf(middle, rate, delay) < q else (low, middle)
    return high


def erlang_c(servers: int, load: float) -> float:
    """P(an arrival waits) in M/M/c with c servers and offered load a = λ/μ_server (< c)."""
    _utilization(load, 1.0, servers)
    blocked = 1.0  # Erlang B, by its recursion: stable for any c
    for k in range(1, servers + 1):
        blocked = load * blocked / (k + load * blocked)
    busy = load / servers
    return blocked / (1 - busy * (1 - blocked))


def mdc_mean_wait(rate: float, delay: float, servers: int) -> float:
    """M/D/c mean wait, Cosmetatos' approximation (exact P-K for c = 1).

    W(M/D/c) ≈ ½·[1 + (1-ρ)(c-1)(√(4+5c) - 2)/(16ρc)] · W(M/M/c), W(M/M/c) = C(c, λD)·D/(c(1-ρ)).
    """
    busy = _utilization(rate, delay, servers)
    if busy == 0:
        return 0.0
    mmc = erlang_c(servers, rate * delay) * delay / (servers * (1 - busy))
    correction = (1 - busy) * (servers - 1) * (math.sqrt(4 + 5 * servers) - 2) / (16 * busy * servers)
    return 0.5 * (1 + correction) * mmc


def overload_wait(rate: float, capacity: float, at: float) -> float:
    """Without an in-flight cap, how long a request sent at `at` queues: at·(λ/μ - 1), or 0."""
    return max(0.0, at * (rate / capacity - 1))


def overload_dropped_share(rate: float, capacity: float) -> float:
    """With an in-flight cap, the share of requests dropped once the backlog is at the cap: 1 - μ/λ."""
    return max(0.0, 1 - capacity / rate)


def overload_latency(capacity: float, max_in_flight: int) -> float:
    """With an in-flight cap M above capacity, every answered request takes about M/μ (Little)."""
    return max_in_flight / capacity


def cap_fill_time(rate: float, capacity: float, max_in_flight: int) -> float:
    """Seconds until the backlog reaches the cap M: M/(λ-μ) (∞ at or below capacity)."""
    return max_in_flight / (rate - capacity) if rate > capacity else math.inf


@dataclass(frozen=True)
class SteadyState:
    """One simulated open-loop run; latencies are of answered requests, from their send time."""

    offered: float  # λ, requests/s asked for
    achieved: float  # answers with answer time in [0, duration], per second of duration
    capacity: float  # μ, capacity()
    dropped_share: float  # of the scheduled requests, dropped by the in-flight cap
    p50: float
    p90: float
    p99: float
    mean: float
    regime: str  # what the model says of the latency here, in words (LATENCY_*)


def steady_state(
    mode: Mode,
    rate: float,
    delay: float,
    caps: Caps,
    *,
    duration: float,
    arrivals: Arrivals = "constant",
    max_in_flight: int | None = None,
    seed: int = 1,
) -> SteadyState:
    """Simulate lab.arrivals.schedule(rate, duration, arrivals, seed), the sender's exact sends.

    Every request that is sent is answered in the end (the model has no timeouts); the
    latencies are of all of them, achieved counts only the answers within the run, as
    the sender does. `regime` is the matching text of LATENCY_BELOW_CAPACITY or
    LATENCY_ABOVE_CAPACITY; what the model says below and above capacity: the module's docstring.
    """
    if caps.workers != 1:
        raise ValueError("the steady-state simulation models one worker (caps.workers = 1)")
    sends = schedules.schedule(rate, duration, arrivals, seed)
    latencies = simulate(mode, sends, delay, caps, max_in_flight)
    answered = sorted(x for x in latencies if x is not None)
    in_time = sum(1 for send, x in zip(sends, latencies) if x is not None and send + x <= duration)
    mu = capacity(mode, delay, caps)
    return SteadyState(
        offered=rate,
        achieved=in_time / duration,
        capacity=mu,
        dropped_share=(len(sends) - len(answered)) / len(sends),
        p50=quantile(answered, 0.5),
        p90=quantile(answered, 0.9),
        p99=quantile(answered, 0.99),
        mean=math.fsum(answered) / len(answered),
        regime=LATENCY_BELOW_CAPACITY[mode][arrivals] if rate < mu else LATENCY_ABOVE_CAPACITY,
    )
