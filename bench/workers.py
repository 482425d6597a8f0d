"""The workers experiment: sync mode under gunicorn with W = 1, 2, 4 workers, beside async with one.

"Just add workers" is the fix many teams reach for first. Each configuration gets the same
bursts of N simultaneous requests, several times; the table shows the makespans beside the
model's even spread (⌈N/W⌉·D in sync mode), the spread the kernel actually gave (read off
each sync burst's completion times: model.sync_loads), and what the workers cost in memory
(the resident set of the master and of each worker, read from /proc after the bursts).

The receiver is not pinned here: how a burst spreads over workers depends on which of them
the kernel wakes and runs, and a real deployment gives them every core.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import Memory, Workers, WorkersSize
from bench.run import BenchError, Services, sender
from lab import model
from tools.processes import Service, children


@dataclass(frozen=True)
class Config:
    label: str
    mode: model.Mode
    workers: int
    accept: str = "shared"  # RECEIVER_ACCEPT, under gunicorn

    def env(self, metrics_dir: Path) -> dict[str, str]:
        env = {"RECEIVER_MODE": self.mode, "RECEIVER_WORKERS": str(self.workers)}
        if self.workers > 1:
            env |= {"RECEIVER_ACCEPT": self.accept, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        return env


CONFIGS = (
    Config("sync, 1 worker (uvicorn)", "sync", 1),
    Config("sync, 2 workers", "sync", 2),
    Config("sync, 4 workers", "sync", 4),
    Config("sync, 4 workers, reuseport", "sync", 4, "reuseport"),
    Config("async, 1 worker (uvicorn)", "async", 1),
)
SIZES = (4, 8)  # N: as many requests as the most workers, and twice that


def seconds(delay: float, repeats: int) -> float:
    """How long the experiment takes by the model (even spread), for the progress bar."""
    caps = model.Caps(pool_limit=100, threads=40)
    return sum(model.makespan(c.mode, n, delay, _caps(c, caps)) * repeats for c in CONFIGS for n in SIZES)


def _caps(config: Config, caps: model.Caps) -> model.Caps:
    return model.Caps(caps.pool_limit, caps.threads, config.workers)


def _kb(path: str, field: str) -> float:
    for line in Path(path).read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise BenchError(f"{path} has no {field}")


def rss_mb(pid: int) -> float:
    """A process's resident set in MB (VmRSS): pages it shares with others counted in full."""
    return _kb(f"/proc/{pid}/status", "VmRSS") / 1024


def pss_mb(pid: int) -> float:
    """A process's proportional set in MB: each shared page split among the processes sharing it."""
    return _kb(f"/proc/{pid}/smaps_rollup", "Pss") / 1024


def memory(service: Service) -> Memory:
    """RSS of the receiver's main process and of each worker it forked (gunicorn), and their PSS in all, in MB.

    RSS per process counts what forked workers still share with the master in each of
    them; the PSS sum is what they cost the machine together.
    """
    pid = service.process.pid
    forked = children(pid)
    workers = [round(rss_mb(c), 1) for c in forked]
    return Memory(main_mb=round(rss_mb(pid), 1), workers_mb=workers, total_mb=round(rss_mb(pid) + sum(workers), 1),
                  pss_total_mb=round(sum(pss_mb(p) for p in (pid, *forked)), 1))


def measure(config: Config, receiver: Service, delay: float, repeats: int, out: Path,
            load_cpus: list[int] | None, advance: Callable[[str, float], None]) -> Workers:
    caps = model.Caps(pool_limit=100, threads=40, workers=config.workers)
    bursts = []
    for n in SIZES:
        predicted = model.makespan(config.mode, n, delay, caps)
        for i in range(repeats):
            name = f"workers-{config.mode}-{config.workers}-{config.accept}-{n}-{i}.json"
            result = sender([receiver.url], out / name, load_cpus, timeout=predicted * n + 60,
                            SENDER_CONCURRENCY=str(n),
                            SENDER_DELAY=f"{delay:g}", SENDER_TIMEOUT=f"{predicted * n + 30:g}")
            (target,) = result["targets"]
            failed = sum(r["status"] != 200 for r in target["results"])
            if failed:
                raise BenchError(f"workers: {config.label} N={n}: {failed} of {n} requests failed; see the logs")
            times = sorted(r["seconds"] for r in target["results"])
            loads = model.sync_loads(times, delay) if config.mode == "sync" else None
            bursts.append({"n": n, "makespan": target["makespan"], "times": times, "loads": loads})
            advance(f"workers: {config.label} N={n}: {target['makespan']:.2f} s", predicted)
    return Workers(label=config.label, mode=config.mode, workers=config.workers,
                   accept=config.accept if config.workers > 1 else None, delay=delay,
                   sizes={str(n): summary(config, n, delay, caps, [b for b in bursts if b["n"] == n]) for n in SIZES},
                   memory=memory(receiver))


def summary(config: Config, n: int, delay: float, caps: model.Caps, bursts: list[dict[str, Any]]) -> WorkersSize:
    makespans = [b["makespan"] for b in bursts]
    even = sorted(model.even_spread(n, config.workers), reverse=True)
    return WorkersSize(
        model=model.makespan(config.mode, n, delay, caps), makespans=makespans, median=statistics.median(makespans),
        even_share=sum(b["loads"] == even for b in bursts if b["loads"] is not None) / len(bursts)
        if config.mode == "sync" else None,
        loads=[b["loads"] for b in bursts])


def sweep(running: Services, upstream: str, delay: float, repeats: int, out: Path,
          load_cpus: list[int] | None, advance: Callable[[str, float], None]) -> list[Workers]:
    rows = []
    for i, config in enumerate(CONFIGS):
        receiver = running.start("receiver", None, UPSTREAM_URL=upstream,
                                 **config.env(out / f"receiver-metrics-{i}"))
        try:
            rows.append(measure(config, receiver, delay, repeats, out, load_cpus, advance))
        finally:
            running.stop(receiver)
    return rows
