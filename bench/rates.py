"""The rate sweep: modes × offered rate (fractions of each mode's capacity), open loop.

The sender follows a seeded schedule (lab/arrivals.py) and times every request from when it
was due. The model replays exactly that schedule through the same rules (the simulation,
models/simulate.py), so each measured number has a modelled twin from the same arrivals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.results import Rate, Summary
from bench.run import BenchError, sender
from lab import arrivals, model
from models.simulate import simulate
from models.steady import capacity

# The sender's in-flight cap for a point: this many seconds of the mode's capacity. Above
# capacity the backlog stops there, so latency tends to this (Little's law) and the excess
# is dropped, instead of growing for the whole run.
BACKLOG_SECONDS = 10.0
TIMEOUT = 60.0  # each request's; well above BACKLOG_SECONDS


@dataclass(frozen=True)
class Point:
    mode: model.Mode
    fraction: float
    capacity: float
    delay: float
    caps: model.Caps

    @property
    def offered(self) -> float:
        return self.fraction * self.capacity

    @property
    def max_in_flight(self) -> int:
        return max(10, math.ceil(self.capacity * BACKLOG_SECONDS))


def window_rate(sends: Sequence[float], latencies: Sequence[float | None], duration: float) -> float:
    """Answers per second in the last two thirds of the run: the steady part, past the start-up."""
    start = duration / 3
    done = sum(1 for t, latency in zip(sends, latencies) if latency is not None and start <= t + latency <= duration)
    return done / (duration - start)


def summarize(sends: Sequence[float], latencies: Sequence[float | None], duration: float) -> Summary:
    answered = sorted(latency for latency in latencies if latency is not None)
    return Summary(
        achieved=sum(1 for t, x in zip(sends, latencies) if x is not None and t + x <= duration) / duration,
        window_rate=window_rate(sends, latencies, duration),
        p50=model.quantile(answered, 0.50) if answered else None,  # the model's rule for both
        p99=model.quantile(answered, 0.99) if answered else None,
        dropped_share=(len(latencies) - len(answered)) / len(latencies) if latencies else 0.0,
    )


def measure(receiver: str, point: Point, duration: float, kind: arrivals.Arrivals, seed: int, out: Path,
            load_cpus: list[int] | None) -> Rate:
    result = sender([receiver], out, load_cpus, timeout=duration + TIMEOUT + 60,
                    SENDER_RATE=f"{point.offered:.6g}", SENDER_DURATION=f"{duration:g}", SENDER_ARRIVALS=kind,
                    SENDER_SEED=str(seed), SENDER_MAX_IN_FLIGHT=str(point.max_in_flight),
                    SENDER_DELAY=f"{point.delay:g}", SENDER_TIMEOUT=f"{TIMEOUT:g}")
    (target,) = result["targets"]
    if target["mode"] != point.mode:
        raise BenchError(f"{receiver} runs in mode {target['mode']!r}, expected {point.mode!r}")
    records = target["records"]
    sends = [r[0] for r in records]
    schedule = arrivals.schedule(float(f"{point.offered:.6g}"), duration, kind, seed)
    if len(sends) != len(schedule):
        raise BenchError(f"{point.mode} at {point.offered:g}/s: the sender sent {len(sends)} requests, "
                         f"the schedule has {len(schedule)}")
    errors = sum(1 for r in records if r[2] not in (200, "dropped"))
    if errors:
        raise BenchError(f"{point.mode} at {point.offered:g}/s: {errors} requests failed (not dropped): "
                         f"see the services' logs")
    measured_latencies = [None if r[2] == "dropped" else r[1] for r in records]
    measured = summarize(sends, measured_latencies, duration)
    modelled = summarize(schedule, simulate(point.mode, schedule, point.delay, point.caps,
                                            max_in_flight=point.max_in_flight), duration)
    return Rate(mode=point.mode, fraction=point.fraction, offered=point.offered, capacity=point.capacity,
                duration=duration, max_in_flight=point.max_in_flight, arrivals=kind, seed=seed, sent=target["sent"],
                ok=target["answered"].get("200", 0), errors=errors, dropped=target["dropped"], late=target["late"],
                hdr=target["latency"], **asdict(measured), model=modelled)


def points(modes: Sequence[model.Mode], fractions: Sequence[float], delay: float, caps: model.Caps) -> list[Point]:
    return [Point(mode, fraction, capacity(mode, delay, caps), delay, caps)
            for mode in modes for fraction in fractions]


def sweep(plan: list[Point], duration: float, kind: arrivals.Arrivals, seed: int,
          receiver_for: Callable[[model.Mode], str], out: Path, load_cpus: list[int] | None,
          advance: Callable[[str, float], None]) -> list[Rate]:
    rows = []
    for point in plan:
        advance(f"rate {point.mode} {point.fraction:g}× capacity ({point.offered:.3g}/s)", 0)
        rows.append(measure(receiver_for(point.mode), point, duration, kind, seed,
                            out / f"rate-{point.mode}-{point.fraction:g}.json", load_cpus))
        advance(f"rate {point.mode} {point.fraction:g}×: p50 {rows[-1].p50 or math.nan:.3f} s", duration)
    return rows
