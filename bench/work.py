"""The work sweep: each request also computes c (RECEIVER_CPU_MS), beside the model with c.

For each c in WORK_MS and each mode: a burst of N = BURST_N and a run offered twice the
mode's capacity with work (models/steady.py: with_work()); then the fix that uses more
cores, POOLED: threaded with its work in P processes, with threads enough that the
processes, not the threads, are its cap. The receivers are pinned to the server core
like every other; the pooled one is not, since its processes need the cores (its /info
says how many it has: the model's P' = min(P, cores)). The caps the model uses are what
each receiver's /info reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench import bursts, rates
from bench.passthrough import cpu_seconds
from bench.results import Work
from lab import arrivals, model
from models.steady import capacity
from tools.processes import children, get

WORK_MS = (5.0, 20.0)  # c in milliseconds; c = 0 is the main sweeps
BURST_N = 10
POOLED = ("threaded", 20.0, 2, 200)  # mode, c ms, P processes, T threads (T/(D + c) above P/c at D = 1 s)
RATE_FRACTION = 2.0  # capacity is what a mode achieves when offered twice as much (as bench.goals says)


@dataclass(frozen=True)
class Case:
    mode: model.Mode
    caps: model.Caps  # as asked for; the measured point's caps are the receiver's own (its /info)

    @property
    def label(self) -> str:
        pooled = f", P = {self.caps.processes}, T = {self.caps.threads}" if self.caps.processes else ""
        return f"{self.mode}, c = {self.caps.cpu * 1000:g} ms{pooled}"

    @property
    def pinned(self) -> bool:
        return not self.caps.processes


def cases(modes: tuple[model.Mode, ...], base: model.Caps) -> list[Case]:
    found = [Case(mode, replace(base, cpu=ms / 1000)) for ms in WORK_MS for mode in modes]
    mode, ms, processes, threads = POOLED
    if mode in modes:
        found.append(Case(mode, replace(base, cpu=ms / 1000, processes=processes, threads=threads, cores=2)))
    return found


def seconds(plan: list[Case], delay: float, duration: float) -> float:
    """How long the sweep takes, by the model: each case's burst and its rate run."""
    return sum(model.makespan(c.mode, BURST_N, delay, c.caps) + duration for c in plan)


def env(case: Case) -> dict[str, str]:
    caps = case.caps
    return {"RECEIVER_MODE": case.mode, "RECEIVER_POOL_LIMIT": str(caps.pool_limit),
            "RECEIVER_THREADS": str(caps.threads), "RECEIVER_CPU_MS": f"{caps.cpu * 1000:g}",
            "RECEIVER_CPU_PROCESSES": str(caps.processes)}


def caps_of(url: str) -> model.Caps:
    _, body = get(f"{url}/info", timeout=10)
    return model.Caps.from_info(json.loads(body))


# The processes whose CPU a work case's rate run counts (Work.busy): the receiver (its loop and
# threads), its pool of processes, upstream, and the sender.
PROCESSES = ("receiver", "pool", "upstream", "sender")


def processes(receiver: int, upstream: int) -> dict[str, list[int]]:
    """The pids of each of PROCESSES now: the sender is this process's child running `-m sender`."""
    def runs_sender(pid: int) -> bool:
        try:
            return b"\0sender\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    return {"receiver": [receiver], "pool": children(receiver), "upstream": [upstream],
            "sender": [pid for pid in children(os.getpid()) if runs_sender(pid)]}


class Busy(threading.Thread):
    """The cores each of PROCESSES kept busy between two moments of a run (its window), read from /proc.

    begin, end: seconds after start(); pids(): each name's processes (they may come and go).
    busy: name -> CPU seconds a second over the window, once the thread is done.
    """

    def __init__(self, pids: Callable[[], dict[str, list[int]]], begin: float, end: float):
        super().__init__(name="bench-busy", daemon=True)
        self.pids, self.begin, self.end = pids, begin, end
        self.busy: dict[str, float] | None = None
        self._over = threading.Event()

    def _read(self) -> tuple[float, dict[str, dict[int, float]]]:
        seen: dict[str, dict[int, float]] = {}
        for name, pids in self.pids().items():
            seen[name] = {}
            for pid in pids:
                with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile
                    seen[name][pid] = cpu_seconds(pid)
        return time.monotonic(), seen

    def run(self) -> None:
        started = time.monotonic()
        if self._over.wait(self.begin):
            return
        t0, first = self._read()
        if self._over.wait(max(0.0, started + self.end - time.monotonic())):
            return
        t1, last = self._read()
        self.busy = {name: round(sum(cpu - first.get(name, {}).get(pid, 0.0) for pid, cpu in last[name].items())
                                 / (t1 - t0), 3) for name in last}

    def stop(self) -> None:
        self._over.set()


SENDER_START = 0.5  # seconds, about, from starting the sender to its first scheduled send


def sweep(plan: list[Case], delay: float, duration: float, kind: arrivals.Arrivals, seed: int,
          receiver_for: Callable[[Case], str], out: Path, load_cpus: list[int] | None,
          advance: Callable[[str, float], None],
          pids: Callable[[], dict[str, list[int]]] | None = None) -> list[Work]:
    """Every case: its burst of BURST_N, then its run at RATE_FRACTION × its capacity with work.

    pids(): each of PROCESSES' pids, for the receiver receiver_for() gave last (None: not local);
    each rate run then counts the cores they kept busy over its window (rates.window_rate's).
    """
    rows = []
    for case in plan:
        url = receiver_for(case)
        caps = caps_of(url)
        predicted = model.makespan(case.mode, BURST_N, delay, caps)
        advance(f"work {case.label}: burst N={BURST_N} (model {predicted:.3g} s)", 0)
        series = bursts.Series(case.label, case.mode, caps, (BURST_N,))
        slug = case.label.replace(" ", "").replace(",", "-").replace("=", "")
        burst = bursts.measure(url, series, BURST_N, delay, predicted, out / f"work-burst-{slug}.json", load_cpus)
        advance(f"work {case.label}: {burst.makespan:.3f} s", predicted)
        point = rates.Point(case.mode, RATE_FRACTION, capacity(case.mode, delay, caps), delay, caps)
        advance(f"work {case.label}: rate {point.offered:.3g}/s", 0)
        busy = None if pids is None else Busy(pids, SENDER_START + duration / 3, SENDER_START + duration)
        if busy is not None:
            busy.start()
        try:
            rate = rates.measure(url, point, duration, kind, seed, out / f"work-rate-{slug}.json", load_cpus)
        finally:
            if busy is not None:
                busy.stop()
                busy.join()
        advance(f"work {case.label}: {rate.window_rate or 0:.3g}/s", duration)
        rows.append(Work(label=case.label, mode=case.mode, cpu_ms=caps.cpu * 1000, processes=caps.processes,
                         cores=caps.cores, threads=caps.threads, pinned=case.pinned, burst=burst, rate=rate,
                         busy=busy.busy if busy is not None else None))
    return rows
