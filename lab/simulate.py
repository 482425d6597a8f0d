"""The receiver as a discrete-event simulation: the burst model's rules, for any arrival times.

lab.model re-exports `simulate`; use it from there. The rules are the ones lab/model.py
states for a burst, made explicit so that they also say what happens when requests
arrive one by one:

- One event loop runs ready steps one at a time, first ready first run. A step is either
  instant or blocks the loop for D (a requests call inside async def).
- A request arrives at its intended send time; its first step becomes ready then.
- An aiohttp call needs one of L connector slots (none if L = 0). It runs D off the loop;
  then its continuation becomes ready. The slot is released when the loop runs that
  continuation: that hands it to the first waiter (FIFO), whose step becomes ready at that
  moment, and whose call starts when the loop runs that step.
- A threaded call goes to a pool of T threads (FIFO queue), runs D, and its continuation
  becomes ready on the loop.
- A request is answered when the loop finishes its last step.
- Modes: sync = one blocking step. async = start the call; continuation: release, answer.
  mixed = start the call; continuation: release, then block D, answer. threaded = hand
  the call to the pool; continuation: answer.
- An open-loop sender with an in-flight cap M drops a request whose send time comes while
  M of its requests are unanswered (an answer at that very instant counts as answered).
  A dropped request never reaches the receiver.

Ties. "First ready first run" needs an order among steps that become ready at the same
instant, and the burst model fixes which one: requests that are sent "at once" are really
sent one after another, a hair apart, and everything a request causes inherits its hair.
So every moment is a pair (t, e): t in seconds and e an infinitesimal tag. Request i
arrives at (a_i, i) (i = position in arrival order); the loop's clock is a pair; a step
runs at max(clock, ready); a blocking step moves the clock to (t + D, e); a call started
at (t, e) ends at (t + D, e); a waiter woken at (t, e) is ready at (t, e). Equal pairs go
by request order. With it, when two aiohttp answers arrive "together" in a mixed burst,
the waiter that the first one's continuation wakes runs right after that continuation's
blocking call, before the second continuation: exactly the model's a_k = t_(k-L) + D.
(Breaking ties by request order alone would run the second continuation first, and
give 2, 3, 5, 6 instead of 2, 3, 4, 5 times D for N = 4, L = 2.)

The simulation runs in units of D (arrival times divided by D), so that a burst's times
are small integers and its ties are exact for any D; latencies are scaled back. Each
request costs a few heap operations on small tuples: about a million arrivals per second
(100k Poisson arrivals in 0.04-0.1 s, any mode, L = 100, T = 40).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.model import Caps, Mode

# What a queued loop step does (the last field of a heap entry).
_CONTINUE = 0  # an upstream call (aiohttp or thread) is done: the request's next step
_START = 1  # a woken connector waiter: start its aiohttp call with the slot it was handed


def simulate(
    mode: Mode,
    arrivals: Sequence[float],
    delay: float,
    caps: Caps,
    max_in_flight: int | None = None,
) -> list[float | None]:
    """Latency of each request, in arrival-list order, from its arrival to its answer.

    `arrivals` are intended send times in seconds (any order; equal times go in list
    order). None marks a request the sender dropped (max_in_flight of its requests were
    unanswered at its send time); max_in_flight=None: the sender never drops.
    """
    if delay < 0:
        raise ValueError(f"delay is at least 0 seconds, got {delay!r}")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight is at least 1 (or None), got {max_in_flight!r}")
    n = len(arrivals)
    if n == 0:
        return []
    if delay == 0:
        return [0.0] * n  # every step is instant: answered the moment it arrives
    order = list(range(n))
    if any(arrivals[i] > arrivals[i + 1] for i in range(n - 1)):
        order.sort(key=arrivals.__getitem__)  # stable: equal times keep list order
    scaled = [arrivals[i] / delay for i in order]
    answers = _run(mode, scaled, caps.pool_limit, caps.threads, max_in_flight)
    latencies: list[float | None] = [None] * n
    for position, i in enumerate(order):
        answer = answers[position]
        if answer is not None:
            latencies[i] = (answer - scaled[position]) * delay
    return latencies


def _run(
    mode: str, arrivals: list[float], limit: int, threads: int, max_in_flight: int | None
) -> list[float | None]:
    """Answer times (in units of D, D = 1) of requests sorted by arrival; None = dropped."""
    if mode not in ("sync", "async", "mixed", "threaded"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "threaded" and threads < 1:
        raise ValueError(f"threaded mode needs at least one thread, got {threads}")
    n = len(arrivals)
    answer: list[float | None] = [None] * n
    answered: list[float] = []  # answer times in the order they happen (non-decreasing)
    seen = 0  # how many of `answered` are at or before the current send time
    sent = 0
    cap = n + 1 if max_in_flight is None else max_in_flight
    heap: list[tuple[float, int, int, int]] = []  # loop steps: (t, e, request, what)
    push, pop = heapq.heappush, heapq.heappop
    waiters: deque[int] = deque()  # connector waiters, FIFO
    busy = 0  # connector slots held
    unlimited = limit <= 0
    pool: list[tuple[float, int]] = [(-math.inf, -1)] * max(threads, 1)  # thread free times
    blocking = mode in ("sync", "mixed")
    t = -math.inf  # the loop's clock (t, e)
    e = -1
    i = 0
    while i < n or heap:
        if heap and (i == n or heap[0][0] <= arrivals[i]):
            # A continuation or a woken waiter (its tag is below i's: it wins a tie in t).
            t_ready, e_ready, r, what = pop(heap)
            if t_ready > t or (t_ready == t and e_ready > e):
                t, e = t_ready, e_ready
            if what == _START:
                push(heap, (t + 1.0, e, r, _CONTINUE))
                continue
            if mode == "threaded":
                answer[r] = t
                answered.append(t)
                continue
            if waiters:  # async, mixed: release the slot, handing it to the first waiter
                push(heap, (t, e, waiters.popleft(), _START))
            else:
                busy -= 1
            if blocking:  # mixed: the requests call after the aiohttp one
                t += 1.0
            answer[r] = t
            answered.append(t)
            continue
        # The sender's next send time.
        a = arrivals[i]
        r = i
        i += 1
        while seen < len(answered) and answered[seen] <= a:
            seen += 1
        if sent - seen >= cap:
            continue  # dropped: never reaches the receiver
        sent += 1
        if a >= t:  # the loop is idle (or just finishing): it reads the request now
            t, e = a, r
        if mode == "sync":
            t += 1.0
            answer[r] = t
            answered.append(t)
        elif mode == "threaded":
            free_t, free_e = pool[0]
            start_t, start_e = (t, e) if (t > free_t or (t == free_t and e > free_e)) else (free_t, free_e)
            heapq.heapreplace(pool, (start_t + 1.0, start_e))
            push(heap, (start_t + 1.0, start_e, r, _CONTINUE))
        elif unlimited or busy < limit:
            busy += 1
            push(heap, (t + 1.0, e, r, _CONTINUE))
        else:
            waiters.append(r)
    return answer
