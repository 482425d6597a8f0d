"""What each receiver mode costs in a burst: the model the sender, the dashboard and the tests share.

N requests reach the receiver at the same moment; every upstream call takes D seconds.
Request k (1-based, in the order the receiver finishes them) is answered at t_k:

    sync      t_k = k·D          each call blocks the event loop; the next request is not
                                 even read until the previous answer has gone out
    async     t_k = ⌈k/L⌉·D      calls overlap; the aiohttp connector lets L through at once
    threaded  t_k = ⌈k/T⌉·D      requests runs in a pool of T threads; the loop stays free
    def       t_k = ⌈k/K⌉·D      a plain `def` endpoint: FastAPI runs it in anyio's thread
                                 pool, K tokens (40 unless RECEIVER_THREADPOOL_TOKENS says)
    mixed     t_k = max(t_(k-1), a_k) + D
              a_k = D            for k <= L: the aiohttp calls overlap
              a_k = t_(k-L) + D  for k > L: a call waits for a pooled connection; the
                                 connection is freed when request k-L's aiohttp answer
                                 arrives, but the waiting call only starts once the loop
                                 runs again, after k-L's blocking requests call
              which solves to t_k = (k+1)·D for L = 0 or L >= 2, and t_k = 2k·D for L = 1:
              one aiohttp wait, then every blocking call in a row.

The makespan (first send to last answer) is t_N. L = 0 means "no connector limit"
(aiohttp's meaning of limit=0). Per-request overheads (parsing, logging, loopback round
trips: about a millisecond each) are left out.

W workers (RECEIVER_WORKERS, gunicorn): each is a receiver of its own, with its own loop,
L and T. A burst's makespan is then that of the busiest worker: makespan_spread() for a
given spread of the N requests over the workers, completion_times() for the even spread
(⌈N/W⌉ or ⌊N/W⌋ each), which is the model's stated assumption and a lower bound: sync
⌈N/W⌉·D. The kernel does not promise it (the workers share one listening socket and each
accepts what it can while it wakes); the benchmark measures the spread it does give.

A mode is one record, ModeModel, in MODES_: its formulas as text, its burst, its calls, its
capacity and how the simulator runs it. Every mode-keyed table here (FORMULAS, UPSTREAM_CALLS,
...) is a view of MODES_: a new mode is one record here and one handler in receiver/modes.py.

Beyond bursts, the steady state at an offered rate λ (capacity(), the queueing formulas,
steady_state()) and the simulation of the event loop turn by turn (simulate(): any arrival
times, an open-loop sender's in-flight cap) are tooling, used by the tests and the benchmark
only: they live in models/ (models/steady.py, models/simulate.py), outside the images.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from lab.arrivals import Arrivals

Mode = Literal["sync", "async", "mixed", "threaded", "def"]
# How the simulator (models/simulate.py) runs a request: one blocking call; an aiohttp call
# (a connector slot); an aiohttp call, then a blocking call; a call in a pool of threads.
Shape = Literal["block", "call", "call, block", "thread"]


@dataclass(frozen=True)
class Caps:
    """The receiver's caps that shape a burst (as its GET /info reports them)."""

    pool_limit: int  # L: aiohttp connector limit (per worker), 0 = unlimited
    threads: int  # T: threads that run requests calls in threaded mode (per worker)
    workers: int = 1  # W: receiver processes (gunicorn's uvicorn workers), each with its own loop
    tokens: int = 40  # K: anyio's thread-pool tokens, which run def mode's endpoint (per worker)
    cpu: float = 0.0  # c: seconds of CPU work each request does after its call (RECEIVER_CPU_MS / 1000)
    processes: int = 0  # P: processes that do that work (RECEIVER_CPU_PROCESSES), 0: where the handler runs
    cores: int = 1  # the cores the receiver may run on: P processes compute at most this many at once

    @classmethod
    def from_info(cls, info: dict) -> Caps:
        """The caps from the receiver's GET /info answer."""
        return cls(pool_limit=info["pool_limit"], threads=info["threads"], workers=info.get("workers", 1),
                   tokens=info.get("threadpool_tokens", 40), cpu=info.get("cpu_ms", 0) / 1000,
                   processes=info.get("cpu_processes", 0), cores=info.get("cores", 1))

    @property
    def computing(self) -> int:
        """How many requests' work runs at once: 1 (the loop, or the GIL), or the pool's processes on the cores."""
        return max(1, min(self.processes, self.cores))


@dataclass(frozen=True)
class ModeModel:
    """Everything the model says of one mode (per worker where caps count)."""

    formula: str  # the makespan of a burst of N, as docs/model.md and the sender's summary print it
    formula_per_worker: str  # the same with W workers, each n = ⌈N/W⌉ or ⌊N/W⌋ (the even spread)
    completion_times: Callable[[int, float, Caps], list[float]]  # one worker's burst of n, delay D: t_1..t_n
    blocking_calls: int  # upstream calls per request with a client that blocks the event loop
    upstream_calls: int  # upstream calls per request, in all
    concurrency: Callable[[int, Caps], int]  # the most calls upstream works on at once in a burst of n
    capacity_formula: str  # μ, answers per second it sustains, as text (models/steady.py: capacity())
    capacity: Callable[[float, Caps], float]  # μ of one worker at D > 0
    latency_below_capacity: Mapping[Arrivals, str]  # the latency below capacity, by arrivals, in docs/model.md's words
    shape: Shape  # how the simulator runs one of its requests
    # The makespan when each request also does c of work (work_times()): the work where the
    # handler runs, and with P processes (P' = min(P, cores) at once); the burst within the caps.
    work_formula: tuple[str, str] = ("", "")
    pool: Callable[[Caps], int] = lambda caps: caps.threads  # the threads of a "thread" shape


def _waves(k: int, cap: int) -> int:
    """How many rounds k calls need when at most `cap` run at once (0 = no cap)."""
    return 1 if cap <= 0 else math.ceil(k / cap)


def _capped(n: int, cap: int) -> int:
    return n if cap <= 0 else min(n, cap)


def _in_waves(cap: Callable[[Caps], int]) -> Callable[[int, float, Caps], list[float]]:
    """A burst whose calls go at most cap(caps) at once, each wave D after the last."""
    return lambda n, d, caps: [_waves(k, cap(caps)) * d for k in range(1, n + 1)]


def _mixed(n: int, d: float, caps: Caps) -> list[float]:
    limit = caps.pool_limit
    done: list[float] = []
    for k in range(1, n + 1):
        answered = d if limit <= 0 or k <= limit else done[k - limit - 1] + d
        done.append(max(done[-1] if done else 0.0, answered) + d)
    return done


def mixed_late(n: int, d: float, caps: Caps) -> list[float]:
    """mixed's burst when every waiting aiohttp call resumes late: t_k, earliest first.

    A call waiting for a pooled connection (L < N) is woken when an earlier request's answer
    frees one, but the loop may first run every handler whose answer came in the same turn,
    blocking call and all: which runs first is a race the receiver does not decide. Here the
    waiting calls of each wave of L start only after all of the previous wave's blocking
    calls. The model's completion_times() is the other end: each starts right after the
    blocking call of the request that freed its connection.
    """
    limit = caps.pool_limit
    done: list[float] = []
    for k in range(1, n + 1):
        wave = _waves(k, limit)
        answered = d if wave == 1 else done[(wave - 1) * limit - 1] + d
        done.append(max(done[-1] if done else 0.0, answered) + d)
    return done


def _mixed_capacity(d: float, caps: Caps) -> float:
    limit = caps.pool_limit
    return 1 / d if limit <= 0 else limit / ((limit + 1) * d)


def _pool_latency(c: str) -> dict[Arrivals, str]:
    return {"constant": "D", "poisson": f"D + M/D/{c} wait (mean < 0.01·D for {c} ≥ 40, ρ ≤ 0.8)"}


MODES_: dict[Mode, ModeModel] = {
    "sync": ModeModel(
        formula="N·D", formula_per_worker="⌈N/W⌉·D",
        completion_times=lambda n, d, caps: [k * d for k in range(1, n + 1)],
        blocking_calls=1, upstream_calls=1, concurrency=lambda n, caps: 1,
        capacity_formula="1/D", capacity=lambda d, caps: 1 / d,
        latency_below_capacity={"constant": "D", "poisson": "D + M/D/1 wait (mean ρD/(2(1−ρ)))"},
        shape="block", work_formula=("N·(D+c)", "N·D + c if c ≤ P'·D")),
    "async": ModeModel(
        formula="⌈N/L⌉·D", formula_per_worker="⌈⌈N/W⌉/L⌉·D",
        completion_times=_in_waves(lambda caps: caps.pool_limit),
        blocking_calls=0, upstream_calls=1, concurrency=lambda n, caps: _capped(n, caps.pool_limit),
        capacity_formula="L/D (∞ if L=0)",
        capacity=lambda d, caps: math.inf if caps.pool_limit <= 0 else caps.pool_limit / d,
        latency_below_capacity=_pool_latency("L"), shape="call", work_formula=("D + N·c", "D + ⌈N/P'⌉·c")),
    "mixed": ModeModel(
        formula="(N+1)·D (2N·D if L=1)", formula_per_worker="(⌈N/W⌉+1)·D", completion_times=_mixed,
        blocking_calls=1, upstream_calls=2, concurrency=lambda n, caps: _capped(n, caps.pool_limit),
        capacity_formula="L/((L+1)·D): 1/(2D) if L=1, 1/D if L=0 (up to 1/D if L≥2)", capacity=_mixed_capacity,
        latency_below_capacity={"constant": "2D if λD ≤ ½, else batches: up to (⌈λD/(1−λD)⌉+1)·D",
                                "poisson": "≥ 2D, no closed form: simulated"},
        shape="call, block", work_formula=("(N+1)·D + N·c", "(N+1)·D + c")),
    "threaded": ModeModel(
        formula="⌈N/T⌉·D", formula_per_worker="⌈⌈N/W⌉/T⌉·D", completion_times=_in_waves(lambda caps: caps.threads),
        blocking_calls=0, upstream_calls=1, concurrency=lambda n, caps: _capped(n, caps.threads),
        capacity_formula="T/D", capacity=lambda d, caps: caps.threads / d,
        latency_below_capacity=_pool_latency("T"), shape="thread", work_formula=("D + N·c", "D + ⌈N/P'⌉·c")),
    "def": ModeModel(  # threaded, with anyio's K tokens for threads: the endpoint itself goes to the pool
        formula="⌈N/K⌉·D", formula_per_worker="⌈⌈N/W⌉/K⌉·D", completion_times=_in_waves(lambda caps: caps.tokens),
        blocking_calls=0, upstream_calls=1, concurrency=lambda n, caps: _capped(n, caps.tokens),
        capacity_formula="K/D", capacity=lambda d, caps: caps.tokens / d,
        latency_below_capacity=_pool_latency("K"), shape="thread", pool=lambda caps: caps.tokens,
        work_formula=("D + N·c", "D + ⌈N/P'⌉·c")),
}
MODES: tuple[Mode, ...] = get_args(Mode)  # MODES_ has one record per Mode, in this order (tests/test_model.py)

# Views of the records, by mode, under the names the rest of the lab reads.
FORMULAS: dict[Mode, str] = {mode: m.formula for mode, m in MODES_.items()}
FORMULAS_PER_WORKER: dict[Mode, str] = {mode: m.formula_per_worker for mode, m in MODES_.items()}
WORK_FORMULAS: dict[Mode, tuple[str, str]] = {mode: m.work_formula for mode, m in MODES_.items()}
CAPACITY_FORMULAS: dict[Mode, str] = {mode: m.capacity_formula for mode, m in MODES_.items()}
BLOCKING_CALLS: dict[Mode, int] = {mode: m.blocking_calls for mode, m in MODES_.items()}
UPSTREAM_CALLS: dict[Mode, int] = {mode: m.upstream_calls for mode, m in MODES_.items()}


def even_spread(n: int, workers: int) -> list[int]:
    """The model's assumption for W workers: n requests dealt out in turn, ⌈n/W⌉ or ⌊n/W⌋ each."""
    return [n // workers + (w < n % workers) for w in range(workers)]


def completion_times_spread(mode: Mode, loads: Sequence[int], delay: float, caps: Caps) -> list[float]:
    """Completion times, earliest first, when worker w gets loads[w] of the burst (each its own loop)."""
    if sum(loads) < 1 or min(loads) < 0:
        raise ValueError(f"a burst has at least one request and no worker a negative share, got {list(loads)}")
    return sorted(t for load in loads if load for t in _one_worker(mode, load, delay, caps))


def completion_times(mode: Mode, n: int, delay: float, caps: Caps) -> list[float]:
    """Seconds after the burst starts at which each of n requests is answered, earliest first.

    With W > 1 workers, under the even spread (even_spread()). With work (c > 0), work_times().
    """
    if n < 1:
        raise ValueError(f"a burst has at least one request, got n={n}")
    if caps.workers > 1:
        return completion_times_spread(mode, even_spread(n, caps.workers), delay, caps)
    return _one_worker(mode, n, delay, caps)


def _one_worker(mode: Mode, n: int, delay: float, caps: Caps) -> list[float]:
    """One worker's burst of n: the mode's closed form, or work_times() when its requests compute."""
    return work_times(mode, n, delay, caps) if caps.cpu > 0 else MODES_[mode].completion_times(n, delay, caps)


class _Servers:
    """m servers taken first come, first served: each job starts when it is ready and one is free."""

    def __init__(self, m: int):
        self.free = [0.0] * max(1, m)

    def serve(self, ready: float, seconds: float) -> float:
        start = max(ready, heapq.heappop(self.free))
        heapq.heappush(self.free, start + seconds)
        return start + seconds


def work_times(mode: Mode, n: int, d: float, caps: Caps) -> list[float]:
    """A burst of n whose requests each do c = caps.cpu seconds of work after their call.

    The work holds the GIL: on the loop (sync, async, mixed) it runs on the loop, one request's
    after another, and nothing else runs meanwhile; in a thread (threaded, def) the threads
    overlap their calls but not their work, one thread computing at a time. With P processes
    the work runs min(P, cores) at once, and the loop or the thread only waits for it.
      sync   t_k = k·(D + c); with processes, the calls one after another, the work beside
             them; but a handler resumes only when the loop is free again, after the burst's
             last blocking call: t_k = max(N·D, a free process after k·D, + c)
      async  the calls as without work (⌈k/L⌉·D), then the work queues: t_k = max(t_(k-1), a_k) + c
      mixed  the aiohttp call, then the blocking call and the work on the loop; with processes,
             as sync: the answers wait for the loop's last blocking call
      threaded, def  T (or K) threads each hold a request for its call and its work
    """
    c, pool = caps.cpu, caps.processes > 0
    work = _Servers(caps.computing)  # the loop (or the GIL), or the processes
    done: list[float] = []
    if mode in ("threaded", "def"):
        threads = _Servers(caps.threads if mode == "threaded" else caps.tokens)
        for _ in range(n):
            start = heapq.heappop(threads.free)
            finished = work.serve(start + d, c)
            heapq.heappush(threads.free, finished)
            done.append(finished)
        return sorted(done)
    loop = work if not pool else _Servers(1)  # what runs on the loop, one thing at a time
    limit = caps.pool_limit
    on_loop: list[float] = []  # when each request's part on the loop ends
    for k in range(1, n + 1):
        if mode == "sync":
            ready = loop.serve(0.0, d)  # the blocking call
        elif mode == "async":
            ready = _waves(k, limit) * d
        else:  # mixed: the aiohttp call (a connection freed when an earlier request's loop part ends), then requests
            answered = d if limit <= 0 or k <= limit else on_loop[k - limit - 1] + d
            ready = loop.serve(answered, d)
        on_loop.append(ready)
        done.append(work.serve(ready, c))
    if pool and mode != "async":  # the handlers waiting for their work resume once the loop stops blocking
        done = [max(on_loop[-1], t) for t in done]
    return sorted(done)


def makespan(mode: Mode, n: int, delay: float, caps: Caps) -> float:
    """Seconds from sending n simultaneous requests to the last answer (W workers: evenly spread)."""
    return completion_times(mode, n, delay, caps)[-1]


def makespan_spread(mode: Mode, loads: Sequence[int], delay: float, caps: Caps) -> float:
    """The makespan when worker w gets loads[w] requests: the busiest worker's."""
    return completion_times_spread(mode, loads, delay, caps)[-1]


def sync_loads(times: Sequence[float], delay: float) -> list[int]:
    """The spread over workers that a sync burst's completion times imply, busiest first.

    In sync mode a worker answers its share one D after another, so the number answered
    by about j·D is the number of workers that got at least j requests. Overheads shift
    each answer a little later, so times are rounded to the nearest multiple of D.
    """
    if delay <= 0:
        raise ValueError(f"the spread shows only with D > 0, got {delay!r}")
    rounds = [max(1, round(t / delay)) for t in times]
    answered = [rounds.count(j) for j in range(1, max(rounds) + 1)]  # answered[j-1]: workers with ≥ j
    return [sum(count >= w for count in answered) for w in range(1, max(answered) + 1)]


def blocked_seconds(mode: Mode, n: int, delay: float) -> float:
    """How long a burst holds the receiver's event loop: every blocking call, one after another."""
    return MODES_[mode].blocking_calls * n * delay


def upstream_concurrency(mode: Mode, n: int, caps: Caps) -> int:
    """The most calls upstream is working on at once during a burst of n.

    sync: 1, the loop makes one call at a time. async and mixed: the aiohttp calls, up to
    the connector limit (in mixed, a later wave's call overlaps one blocking call, which
    never exceeds L for L >= 2). threaded: up to the number of threads; def: of tokens.
    """
    return MODES_[mode].concurrency(n, caps)


def quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of a sorted, non-empty sequence: the ⌈q·n⌉-th smallest.

    The rule every measured and modelled percentile of the lab is read with.
    """
    return ordered[max(0, math.ceil(q * len(ordered) - 1e-9) - 1)]
