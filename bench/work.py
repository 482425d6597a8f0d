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
import resource
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


class Busy:
    """The cores each of PROCESSES kept busy over a run, as a context around it: CPU seconds a second.

    The receiver, its pool and upstream are read from /proc before and after (pids(): each
    name's processes now; they may come and go); the sender, which has ended by then, from
    this process's rusage of its children that ended meanwhile (only the sender does). No
    thread: the benchmark imports Locust, whose gevent patches threading.
    """

    def __init__(self, pids: Callable[[], dict[str, list[int]]]):
        self.pids = pids
        self.busy: dict[str, float] | None = None
        self.seconds: float | None = None  # how long the run was, from the first reading to the last

    def _read(self) -> tuple[float, float, dict[str, dict[int, float]]]:
        seen: dict[str, dict[int, float]] = {}
        for name, pids in self.pids().items():
            seen[name] = {}
            for pid in pids:
                with contextlib.suppress(OSError, ValueError, IndexError):  # gone meanwhile
                    seen[name][pid] = cpu_seconds(pid)
        ended = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.monotonic(), ended.ru_utime + ended.ru_stime, seen

    def __enter__(self) -> Busy:
        self._first = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        t0, ended0, first = self._first
        t1, ended1, last = self._read()
        busy = {name: sum(cpu - first.get(name, {}).get(pid, 0.0) for pid, cpu in last[name].items())
                for name in last}
        busy["sender"] = ended1 - ended0
        self.seconds = round(t1 - t0, 3)
        self.busy = {name: round(seconds / (t1 - t0), 3) for name, seconds in busy.items()}


def processes(receiver: int, upstream: int) -> dict[str, list[int]]:
    """The pids of the receiver, its pool and upstream now (the sender: Busy's rusage)."""
    return {"receiver": [receiver], "pool": children(receiver), "upstream": [upstream]}


def sweep(plan: list[Case], delay: float, duration: float, kind: arrivals.Arrivals, seed: int,
          receiver_for: Callable[[Case], str], out: Path, load_cpus: list[int] | None,
          advance: Callable[[str, float], None],
          pids: Callable[[], dict[str, list[int]]] | None = None) -> list[Work]:
    """Every case: its burst of BURST_N, then its run at RATE_FRACTION × its capacity with work.

    pids(): the receiver's, its pool's and upstream's pids, for the receiver receiver_for() gave
    last (None: not local); each rate run then counts the cores they and the sender kept busy.
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
        busy = None if pids is None else Busy(pids)
        with busy or contextlib.nullcontext():
            rate = rates.measure(url, point, duration, kind, seed, out / f"work-rate-{slug}.json", load_cpus)
        advance(f"work {case.label}: {rate.window_rate or 0:.3g}/s", duration)
        rows.append(Work(label=case.label, mode=case.mode, cpu_ms=caps.cpu * 1000, processes=caps.processes,
                         cores=caps.cores, threads=caps.threads, pinned=case.pinned, burst=burst, rate=rate,
                         busy=busy.busy if busy is not None else None,
                         busy_seconds=busy.seconds if busy is not None else None))
    return rows
