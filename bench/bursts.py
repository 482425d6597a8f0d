"""The burst sweep: modes × N, each burst's makespan beside the model's (lab/model.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.results import Burst, CapsRow
from bench.run import BenchError, sender
from lab import model

# Before a warm series' recorded burst: how long the loop's own ticks are read with no request. Only
# c₀'s burst (goals.overhead) uses the reading, but every recorded burst of a warm series waits for it:
# the committed runs were measured so, and the burst of 1,000 is not to start sooner after its warm one.
IDLE_SECONDS = 1.0


@dataclass(frozen=True)
class Series:
    """One line of the makespan chart: a mode with its caps."""

    label: str
    mode: model.Mode
    caps: model.Caps
    sizes: tuple[int, ...]
    warm: bool = False  # one unrecorded burst of the same N first: the receiver's pool opened, as in a running lab
    settings: tuple[tuple[str, str], ...] = ()  # more of the receiver's settings (its clients, say), as env pairs

    def env(self) -> dict[str, str]:
        return {"RECEIVER_MODE": self.mode, "RECEIVER_POOL_LIMIT": str(self.caps.pool_limit),
                "RECEIVER_THREADS": str(self.caps.threads), **dict(self.settings)}


def plan(series: list[Series], delay: float, max_makespan: float) -> list[tuple[Series, int, float, str | None]]:
    """(series, N, model makespan, why skipped or None) for every point, in run order."""
    points = []
    for s in series:
        for n in s.sizes:
            predicted = model.makespan(s.mode, n, delay, s.caps)
            skip = None if predicted <= max_makespan else f"the model's makespan > --max-makespan {max_makespan:g} s"
            points.append((s, n, predicted, skip))
    return points


def seconds(points: list[tuple[Series, int, float, str | None]]) -> float:
    """How long the points that run take, by the model."""
    return sum(predicted for _, _, predicted, skip in points if skip is None)


def measure(receiver: str, s: Series, n: int, delay: float, predicted: float, out: Path,
            load_cpus: list[int] | None, loop_cpu: Callable[[], float | None] = lambda: None) -> Burst:
    """One burst of n against a running receiver; the row for Results.bursts.

    loop_cpu(): the CPU seconds the receiver's event-loop thread has used so far (None: not
    known, a receiver that is not a local process); read before and after the burst, and for a
    warm series also over IDLE_SECONDS before it, with no request: the loop's own cost a second.
    """
    timeout = min(300.0, predicted * 1.5 + 30)
    idle = None
    if s.warm and (first := loop_cpu()) is not None:  # the loop's own ticks over IDLE_SECONDS with no request
        started = time.monotonic()
        time.sleep(IDLE_SECONDS)
        last = loop_cpu()
        idle = None if last is None else round((last - first) / (time.monotonic() - started), 6)
    started, before = time.monotonic(), loop_cpu()
    result = sender([receiver], out, load_cpus, timeout=timeout + 60, SENDER_CONCURRENCY=str(n),
                    SENDER_DELAY=f"{delay:g}", SENDER_TIMEOUT=f"{timeout:g}")
    (target,) = result["targets"]
    if target["mode"] != s.mode:
        raise BenchError(f"{receiver} runs in mode {target['mode']!r}, expected {s.mode!r}")
    statuses = [r["status"] for r in target["results"]]
    failed = sum(status != 200 for status in statuses)
    if failed:
        raise BenchError(f"{s.label} N={n}: {failed} of {n} requests failed ({sorted(set(map(str, statuses)))}); "
                         f"see the services' logs")
    after, seconds = loop_cpu(), time.monotonic() - started
    used = round(after - before, 6) if after is not None and before is not None else None
    return row(s, n, delay, predicted, status="ok", makespan=target["makespan"],
               times=sorted(r["seconds"] for r in target["results"]), loop_cpu=used,
               loop_seconds=None if used is None else round(seconds, 3), loop_idle=idle)


def row(s: Series, n: int, delay: float, predicted: float, status: str, reason: str | None = None,
        makespan: float | None = None, times: list[float] | None = None, loop_cpu: float | None = None,
        loop_seconds: float | None = None, loop_idle: float | None = None) -> Burst:
    return Burst(label=s.label, mode=s.mode, n=n, delay=delay, warm=s.warm,
                 caps=CapsRow(pool_limit=s.caps.pool_limit, threads=s.caps.threads), status=status, reason=reason,
                 makespan=makespan, model=predicted, completion_times=times,
                 model_times=model.completion_times(s.mode, n, delay, s.caps), failed=0, loop_cpu=loop_cpu,
                 loop_seconds=loop_seconds, loop_idle=loop_idle)


def sweep(series: list[Series], delay: float, max_makespan: float, receiver_for: Callable[[Series], str],
          out: Path, load_cpus: list[int] | None, advance: Callable[[str, float], None],
          loop_cpu: Callable[[], float | None] = lambda: None) -> list[Burst]:
    """Every point of the plan; receiver_for(series) gives a receiver URL in that mode and caps.

    advance(description, model seconds done) reports progress; loop_cpu(): measure()'s, for
    the receiver receiver_for() gave last.
    """
    rows = []
    for s, n, predicted, skip in plan(series, delay, max_makespan):
        if skip:
            rows.append(row(s, n, delay, predicted, status="skipped", reason=skip))
            continue
        receiver = receiver_for(s)
        advance(f"burst {s.label} N={n} (model {predicted:g} s)", 0)
        if s.warm:
            measure(receiver, s, n, delay, predicted, out / f"warm-{s.label}-{n}.json".replace(" ", "_"), load_cpus)
        rows.append(measure(receiver, s, n, delay, predicted, out / f"burst-{s.label}-{n}.json".replace(" ", "_"),
                            load_cpus, loop_cpu))
        advance(f"burst {s.label} N={n}: {rows[-1].makespan:.3f} s", predicted)
    return rows
