"""The receiver as a discrete-event simulation: its event loop turn by turn, for any arrival times.

Tooling: the tests, the benchmark and models/steady.py use it; it is not in the images. The
rules are the burst model's (lab/model.py), made explicit so that they also say what happens
when requests arrive one by one, while the loop may be blocked:

- The event loop goes in turns (uvloop's, like asyncio's): it runs the callbacks that
  were ready when the turn began, one after another; then it polls the sockets and runs
  what they have for it. A callback scheduled during a turn runs in the next one. A
  callback is instant, or blocks the whole loop for D (a requests call inside async def).
- A request's bytes are noticed at the first poll after its send time; its handler starts
  in the next turn. On a new connection it takes one turn more: the poll accepts the
  connection, the next turn starts reading it, the poll after that finds the request.
- The sender (aiohttp) reuses the connection that was freed last, if the receiver has not
  closed it: uvicorn closes a connection idle for KEEP_ALIVE seconds. So a request opens
  a new connection when more are in flight than ever were in the last KEEP_ALIVE seconds,
  as at the start of a burst or after a quiet spell.
- An aiohttp call needs one of L connector slots (none if L = 0). It runs D off the loop;
  its answer is noticed at a poll; its handler continues in the next turn. The slot is
  released there: that hands it to the first waiter (FIFO), whose call starts in the turn
  after. Upstream connections are taken to be open already (they are pooled and kept).
- A threaded call goes to a pool of T threads (FIFO queue), runs D, and its handler
  continues in a later turn.
- A request is answered when its handler finishes (the answer is written at once).
- Work (caps.cpu = c, RECEIVER_CPU_MS) comes after the handler's calls and holds the GIL.
  On the loop (sync, async, mixed) it is one more blocking step of c. In a thread
  (threaded, def) the thread holds its request through call and work, and the work
  waits its turn on one GIL, first come, first served: threads overlap their calls, not
  their work. With processes (caps.processes = P) the work goes to P' = min(P, cores)
  servers, first come, first served; the loop waits for it without blocking (its answer
  is noticed at a poll, like a call's), and a thread waits for it holding its request.
- A mode runs as its record's shape (lab.model.MODES_): "block" (sync) = one blocking
  step. "call" (async) = start the call; then release, answer. "call, block" (mixed) =
  start the call; then release, block D, answer. "thread" (threaded, def) = hand the call
  to the pool of the record's threads (def: anyio's K tokens); then answer.
- An open-loop sender with an in-flight cap M drops a request whose send time comes while
  M of its requests are unanswered (an answer at that very instant counts as answered).
  A dropped request never reaches the receiver. The sender's own /info reads are left out.

What the turns change, next to a loop that runs each step the moment it is ready: a
request that arrives while a blocking call runs waits for the whole turn that call is in,
and one more turn if it came on a new connection; each may hold more blocking calls. For
bursts nothing changes (the loop is idle while a burst is read), and the simulation gives
every burst formula exactly. For mixed under a steady rate it is what the measurements
show: a new connection costs its request one more D now and then (docs/model.md).

Ties. Requests sent "at once" are really sent one after another, a hair apart, and
everything a request causes inherits its hair. So every moment is a pair (t, e): t in
seconds and e an infinitesimal tag. Request i arrives at (a_i, i) (i = position in arrival
order); the loop's clock is a pair; a blocking call moves the clock from (t, e) to
(t + D, e); a call started at (t, e) ends at (t + D, e); a poll finds what happened at or
before the clock, in order of the pairs (equal pairs in the order they were caused). With
it, when two aiohttp answers arrive "together" in a mixed burst, the first one's
continuation runs (and blocks) before the poll finds the second answer, so the waiter it
woke starts its call first: exactly the model's a_k = t_(k-L) + D.

The simulation runs in units of D (arrival times divided by D; of c if D = 0), so that a
burst's times are small integers and its ties are exact for any D; latencies are scaled back.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from typing import get_args

from lab.model import MODES_, Caps, Mode, Shape
from receiver.settings import KEEP_ALIVE  # uvicorn's keep-alive, as the receiver sets it

SHAPES: tuple[Shape, ...] = get_args(Shape)

# Callbacks a turn runs (the second field of a queued callback).
_START = 0  # the request's handler begins
_READ = 1  # a new connection was accepted: start reading it (the request is found at the next poll)
_CONTINUE = 2  # an upstream call (aiohttp or thread) is done: the handler goes on
_GO = 3  # a woken connector waiter: start its aiohttp call with the slot it was handed
_FINISH = 4  # the process pool has done a request's work: the handler answers

# What a poll can find (the last field of an event), besides the sender's requests.
_DATA = 0  # the request on a connection accepted earlier: its handler starts next turn
_ANSWER = 1  # an upstream call's answer (or a thread's result): its handler goes on next turn
_WORKED = 2  # a process's result for a handler on the loop: it answers next turn


def simulate(
    mode: Mode,
    arrivals: Sequence[float],
    delay: float,
    caps: Caps,
    max_in_flight: int | None = None,
    keep_alive: float = KEEP_ALIVE,
) -> list[float | None]:
    """Latency of each request, in arrival-list order, from its arrival to its answer.

    `arrivals` are intended send times in seconds (any order; equal times go in list
    order). None marks a request the sender dropped (max_in_flight of its requests were
    unanswered at its send time); max_in_flight=None: the sender never drops.
    `keep_alive`: seconds the receiver keeps an idle connection (math.inf: for ever).
    """
    if delay < 0:
        raise ValueError(f"delay is at least 0 seconds, got {delay!r}")
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"max_in_flight is at least 1 (or None), got {max_in_flight!r}")
    n = len(arrivals)
    if n == 0:
        return []
    unit = delay or caps.cpu  # the simulation's unit of time: D, or c if D = 0
    if unit == 0:
        return [0.0] * n  # every step is instant: answered the moment it arrives
    order = list(range(n))
    if any(arrivals[i] > arrivals[i + 1] for i in range(n - 1)):
        order.sort(key=arrivals.__getitem__)  # stable: equal times keep list order
    scaled = [arrivals[i] / unit for i in order]
    spec = MODES_.get(mode)
    if spec is None:
        raise ValueError(f"unknown mode {mode!r}")
    work = _Work(delay / unit, caps.cpu / unit, caps.computing if caps.processes else 0)
    answers = _run(spec.shape, scaled, caps.pool_limit, spec.pool(caps), max_in_flight, keep_alive / unit, work)
    latencies: list[float | None] = [None] * n
    for position, i in enumerate(order):
        answer = answers[position]
        if answer is not None:
            latencies[i] = (answer - scaled[position]) * unit
    return latencies


class _Work:
    """The call's length d and the work's c, in the simulation's unit; `processes`: P' (0 = no pool)."""

    def __init__(self, d: float, c: float, processes: int):
        self.d, self.c = d, c
        self.pooled = c > 0 and processes > 0
        # Who computes, first come, first served, as (t, e) pairs: the GIL (one), or the P' processes.
        self.free: list[tuple[float, int]] = [(-math.inf, -1)] * (processes if self.pooled else 1)

    def serve(self, t: float, e: int) -> tuple[float, int]:
        """When work that is ready at (t, e) is done, after the work ahead of it."""
        free = self.free[0]
        start = (t, e) if (t, e) > free else free
        done = (start[0] + self.c, start[1])
        heapq.heapreplace(self.free, done)
        return done


def _run(
    shape: Shape, arrivals: list[float], limit: int, threads: int, max_in_flight: int | None, keep_alive: float,
    work: _Work | None = None,
) -> list[float | None]:
    """Answer times (in units of D, D = 1) of requests sorted by arrival; None = dropped."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}")
    if shape == "thread" and threads < 1:
        raise ValueError(f"a pool of threads needs at least one thread, got {threads}")
    return _Loop(shape, arrivals, limit, threads, max_in_flight, keep_alive, work or _Work(1.0, 0.0, 0)).run()


class _Loop:
    """The receiver's event loop and the sender's connections, in units of D (D = 1; or of c if D = 0)."""

    def __init__(self, shape: Shape, arrivals: list[float], limit: int, threads: int, max_in_flight: int | None,
                 keep_alive: float, work: _Work):
        n = len(arrivals)
        self.shape, self.arrivals, self.limit, self.keep_alive = shape, arrivals, limit, keep_alive
        self.work, self.d = work, work.d
        self.answer: list[float | None] = [None] * n
        self.answered: list[float] = []  # answer times in the order they happen (non-decreasing)
        self.seen = 0  # how many of `answered` are at or before the current send time
        self.sent = 0
        self.cap = n + 1 if max_in_flight is None else max_in_flight
        self.idle: list[float] = []  # the sender's open connections, by when they were freed: last = newest
        self.events: list[tuple[float, int, int, int, int]] = []  # what polls find: (t, e, order, request, what)
        self.caused = 0  # tie-break among events at the same (t, e): the order they were caused in
        self.turn: list[tuple[int, int]] = []  # callbacks for the next turn: (request, what)
        self.waiters: deque[int] = deque()  # connector waiters, FIFO
        self.busy = 0  # connector slots held
        self.unlimited = limit <= 0
        self.pool: list[tuple[float, int]] = [(-math.inf, -1)] * max(threads, 1)  # thread free times
        self.blocking = shape in ("block", "call, block")
        self.t, self.e = -math.inf, -1  # the loop's clock (t, e)
        self.i = 0  # the next request to arrive

    def run(self) -> list[float | None]:
        while True:
            current, self.turn = self.turn, []
            for r, what in current:
                self.callback(r, what)
            if not self.turn and not self.sleep():
                return self.answer
            self.poll()

    def cause(self, t: float, e: int, r: int, what: int) -> None:
        self.caused += 1
        heapq.heappush(self.events, (t, e, self.caused, r, what))

    def done(self, r: int) -> None:
        self.answer[r] = self.t
        self.answered.append(self.t)

    def compute(self, r: int) -> None:
        """A handler on the loop, its calls done: its work blocks the loop, or goes to a process; then it answers."""
        if self.work.pooled:
            t, e = self.work.serve(self.t, self.e)
            self.cause(t, e, r, _WORKED)  # the loop is free meanwhile
            return
        self.t += self.work.c  # deliberately on the loop, as the receiver does it
        self.done(r)

    def callback(self, r: int, what: int) -> None:
        """One callback of the turn."""
        if what == _START:
            if self.shape == "block":
                self.t += self.d  # the requests call: the loop is blocked for D
                self.compute(r)
            elif self.shape == "thread":
                free_t, free_e = self.pool[0]
                t, e = self.t, self.e
                start_t, start_e = (t, e) if (t > free_t or (t == free_t and e > free_e)) else (free_t, free_e)
                # the thread holds the request through its call and its work (which waits for the GIL or a process)
                end = self.work.serve(start_t + self.d, start_e) if self.work.c else (start_t + self.d, start_e)
                heapq.heapreplace(self.pool, end)
                self.cause(end[0], end[1], r, _ANSWER)
            elif self.unlimited or self.busy < self.limit:
                self.busy += 1
                self.cause(self.t + self.d, self.e, r, _ANSWER)
            else:
                self.waiters.append(r)
        elif what == _GO:
            self.cause(self.t + self.d, self.e, r, _ANSWER)
        elif what == _FINISH:
            self.done(r)
        elif what == _READ:
            self.cause(self.t, self.e, r, _DATA)  # already there: the next poll finds it
        else:  # _CONTINUE
            if self.shape != "thread":  # call, call + block: release the slot, handing it to the first waiter
                if self.waiters:
                    self.turn.append((self.waiters.popleft(), _GO))
                else:
                    self.busy -= 1
                if self.blocking:  # mixed: the requests call after the aiohttp one
                    self.t += self.d
                self.compute(r)
            else:
                self.done(r)

    def sleep(self) -> bool:
        """With nothing left to run, the loop sleeps until something happens; False: nothing ever will."""
        events, arrivals, i = self.events, self.arrivals, self.i
        if events and (i == len(arrivals) or (events[0][0], events[0][1]) < (arrivals[i], i)):
            next_t, next_e = events[0][0], events[0][1]
        elif i < len(arrivals):
            next_t, next_e = arrivals[i], i
        else:
            return False
        if next_t > self.t or (next_t == self.t and next_e > self.e):
            self.t, self.e = next_t, next_e
        return True

    def poll(self) -> None:
        """What happened at or before the clock, in the order of the pairs: requests sent, and events."""
        events, arrivals, n, t, e = self.events, self.arrivals, len(self.arrivals), self.t, self.e
        while True:
            i = self.i
            request_first = i < n and (arrivals[i] < t or (arrivals[i] == t and i <= e))
            if request_first and events and (events[0][0], events[0][1]) < (arrivals[i], i):
                request_first = False
            if request_first:
                self.i += 1
                self.request(i)
            elif events and (events[0][0] < t or (events[0][0] == t and events[0][1] <= e)):
                _, _, _, r, what = heapq.heappop(events)
                self.turn.append((r, _START if what == _DATA else _FINISH if what == _WORKED else _CONTINUE))
            else:
                break

    def request(self, r: int) -> None:
        """The sender sends request r (sorted by arrival): dropped, or on a kept or a new connection."""
        a = self.arrivals[r]
        while self.seen < len(self.answered) and self.answered[self.seen] <= a:
            self.idle.append(self.answered[self.seen])  # a connection freed by then
            self.seen += 1
        if self.sent - self.seen >= self.cap:
            return  # dropped: never reaches the receiver
        self.sent += 1
        if self.idle and a - self.idle[-1] >= self.keep_alive:
            self.idle.clear()  # the newest is closed, so are the older ones
        if self.idle:
            self.idle.pop()
            self.turn.append((r, _START))
        else:
            self.turn.append((r, _READ))  # a new connection: accepted now, read next turn
