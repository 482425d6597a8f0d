"""RECEIVER_CPU_MS: pure-Python work after each upstream call, where the mode runs its handler.

The lesson's second chapter: computing blocks too. The work is counted in the running
thread's own CPU time (time.thread_time), so a request costs c = RECEIVER_CPU_MS of CPU
whatever else the machine does, and holds the GIL while it computes: on the event loop
(sync, async, mixed) nothing else runs meanwhile, as under a blocking call; in a thread
(threaded, def) the other threads may wait, but they cannot compute alongside it.
RECEIVER_CPU_PROCESSES = P moves the work to a pool of P processes, which compute on as
many cores as there are.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

# The loop counts this many additions between two readings of the thread's clock.
ROUND = 1_000


def compute(ms: float) -> int:
    """Pure-Python work for ms milliseconds of this thread's own CPU time; a count, so it is not optimised away."""
    end = time.thread_time() + ms / 1000
    count = 0
    while time.thread_time() < end:
        for _ in range(ROUND):
            count += 1
    return count


class Work:
    """Each request's c milliseconds of work, done in this thread or sent to the process pool."""

    def __init__(self, ms: float, processes: int):
        self.ms = ms
        self.processes = processes
        # spawn: a fork of a process that runs threads (the loop's, the pools') may copy a held lock
        self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) \
            if ms and processes else None

    async def start(self) -> None:
        """Have every process of the pool started before the first request needs one (the loop free meanwhile)."""
        if self.pool is not None:
            await asyncio.gather(*(asyncio.wrap_future(self.pool.submit(compute, 0)) for _ in range(self.processes)))

    def in_thread(self) -> None:
        """The work, for a handler in a thread (threaded, def): this thread waits for it."""
        if not self.ms:
            return
        if self.pool is not None:
            self.pool.submit(compute, self.ms).result()
        else:
            compute(self.ms)  # deliberately in this thread: it holds the GIL while it computes

    async def on_loop(self) -> None:
        """The work, for a handler on the event loop (sync, async, mixed)."""
        if not self.ms:
            return
        if self.pool is not None:
            await asyncio.wrap_future(self.pool.submit(compute, self.ms))
        else:
            compute(self.ms)  # deliberately on the loop: computing holds it as a blocking call does

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
