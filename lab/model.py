"""What each receiver mode costs: the model the sender, tests, demo and dashboard share.

N requests reach the receiver at the same moment; every upstream call takes D seconds.
Request k (1-based, in the order the receiver finishes them) is answered at t_k:

    sync      t_k = k·D          each call blocks the event loop; the next request is not
                                 even read until the previous answer has gone out
    async     t_k = ⌈k/L⌉·D      calls overlap; the aiohttp connector lets L through at once
    threaded  t_k = ⌈k/T⌉·D      requests runs in a pool of T threads; the loop stays free
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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

Mode = Literal["sync", "async", "mixed", "threaded"]
MODES: tuple[Mode, ...] = get_args(Mode)

# The makespans in closed form, as the README and the sender's summary print them.
FORMULAS: dict[Mode, str] = {
    "sync": "N·D",
    "async": "⌈N/L⌉·D",
    "mixed": "(N+1)·D (2N·D if L=1)",
    "threaded": "⌈N/T⌉·D",
}


@dataclass(frozen=True)
class Caps:
    """The receiver's caps that shape a burst (as its GET /info reports them)."""

    pool_limit: int  # L: aiohttp connector limit, 0 = unlimited
    threads: int  # T: threads that run requests calls in threaded mode

    @classmethod
    def from_info(cls, info: dict) -> "Caps":
        """The caps from the receiver's GET /info answer."""
        return cls(pool_limit=info["pool_limit"], threads=info["threads"])


def _waves(k: int, cap: int) -> int:
    """How many rounds k calls need when at most `cap` run at once (0 = no cap)."""
    return 1 if cap <= 0 else math.ceil(k / cap)


def _sync(n: int, d: float, caps: Caps) -> list[float]:
    return [k * d for k in range(1, n + 1)]


def _async(n: int, d: float, caps: Caps) -> list[float]:
    return [_waves(k, caps.pool_limit) * d for k in range(1, n + 1)]


def _threaded(n: int, d: float, caps: Caps) -> list[float]:
    return [_waves(k, caps.threads) * d for k in range(1, n + 1)]


def _mixed(n: int, d: float, caps: Caps) -> list[float]:
    limit = caps.pool_limit
    done: list[float] = []
    for k in range(1, n + 1):
        answered = d if limit <= 0 or k <= limit else done[k - limit - 1] + d
        done.append(max(done[-1] if done else 0.0, answered) + d)
    return done


_MODELS: dict[Mode, Callable[[int, float, Caps], list[float]]] = {
    "sync": _sync,
    "async": _async,
    "mixed": _mixed,
    "threaded": _threaded,
}


def completion_times(mode: Mode, n: int, delay: float, caps: Caps) -> list[float]:
    """Seconds after the burst starts at which each of n requests is answered, earliest first."""
    if n < 1:
        raise ValueError(f"a burst has at least one request, got n={n}")
    return _MODELS[mode](n, delay, caps)


def makespan(mode: Mode, n: int, delay: float, caps: Caps) -> float:
    """Seconds from sending n simultaneous requests to the last answer."""
    return completion_times(mode, n, delay, caps)[-1]


# Upstream calls each request makes with a client that blocks the event loop, and in all.
BLOCKING_CALLS: dict[Mode, int] = {"sync": 1, "async": 0, "mixed": 1, "threaded": 0}
UPSTREAM_CALLS: dict[Mode, int] = {"sync": 1, "async": 1, "mixed": 2, "threaded": 1}


def blocked_seconds(mode: Mode, n: int, delay: float) -> float:
    """How long a burst holds the receiver's event loop: every blocking call, one after another."""
    return BLOCKING_CALLS[mode] * n * delay


def upstream_concurrency(mode: Mode, n: int, caps: Caps) -> int:
    """The most calls upstream is working on at once during a burst of n.

    sync: 1, the loop makes one call at a time. async and mixed: the aiohttp calls, up to
    the connector limit (in mixed, a later wave's call overlaps one blocking call, which
    never exceeds L for L >= 2). threaded: up to the number of threads.
    """
    def capped(cap: int) -> int:
        return n if cap <= 0 else min(n, cap)

    per_mode: dict[Mode, int] = {
        "sync": 1,
        "async": capped(caps.pool_limit),
        "mixed": capped(caps.pool_limit),
        "threaded": capped(caps.threads),
    }
    return per_mode[mode]
