"""The benchmark's goals, checked from its results: PASS, FAIL, or not measured (None).

Every goal is a ratio measured side by side in the same run, never an absolute speed.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping
from dataclasses import is_dataclass

from bench.results import Goal, Loadgen, Pair, Passthrough, Results, Server, Tool

FIDELITY_SIZES = (1, 2, 10, 100)  # the bursts whose makespan must sit within ±10% of the model
MAKESPAN_TOLERANCE = 0.10
CAPACITY_TOLERANCE = 0.10
P50_TOLERANCE = 0.20
P50_FRACTIONS = (0.5, 0.8)
CAPACITY_FRACTION = 2.0  # capacity is what a mode achieves when offered twice as much
SCALE_N, SCALE_MAX = 1000, 1.5  # async, connector limit ≥ N, D = 1 s: makespan ≤ 1.5 s
GOAL_DELAY = 1.0
# The references the pass-through servers and the load generators are compared with, in this order.
PASSTHROUGH_REFERENCES = ("FastAPI proxy", "aiohttp.web proxy")
LOADGEN_REFERENCES = ("bare aiohttp loop", "Locust FastHttpUser")


def within(ratio: float, tolerance: float) -> bool:
    return abs(ratio - 1) <= tolerance + 1e-12


def not_measured(group: str, name: str, target: str, why: str | None) -> Goal:
    return Goal(group, name, target, "not measured", None, None, why)


def fidelity(results: Results) -> Iterator[Goal]:
    delay = results.knobs.delay
    note = "" if delay == GOAL_DELAY else f"at D = {delay:g} s (the goal's D is {GOAL_DELAY:g} s)"
    bursts = {(b.label, b.n): b for b in results.bursts}
    for mode in results.knobs.modes:
        for n in FIDELITY_SIZES:
            target = f"within ±{MAKESPAN_TOLERANCE:.0%} of the model"
            name = f"{mode}: makespan, N = {n}"
            burst = bursts.get((mode, n))
            if not burst or burst.makespan is None or not burst.model:
                yield not_measured("fidelity", name, target, burst.reason if burst else "not in this profile")
                continue
            ratio = burst.makespan / burst.model
            yield Goal("fidelity", name, target, f"{burst.makespan:.3f} s vs {burst.model:.3f} s ({ratio:.3f}×)",
                       ratio, within(ratio, MAKESPAN_TOLERANCE), note)
    rates = {(r.mode, r.fraction): r for r in results.rates}
    for mode in results.knobs.modes:
        name = f"{mode}: capacity"
        target = f"within ±{CAPACITY_TOLERANCE:.0%} of the model"
        top = rates.get((mode, CAPACITY_FRACTION))
        if not top or top.window_rate is None or not top.capacity:
            yield not_measured("fidelity", name, target, f"no run at {CAPACITY_FRACTION:g}× capacity")
        else:
            ratio = top.window_rate / top.capacity
            yield Goal("fidelity", name, target, f"{top.window_rate:.3g}/s vs {top.capacity:.3g}/s ({ratio:.3f}×)",
                       ratio, within(ratio, CAPACITY_TOLERANCE),
                       f"answers per second over the last two thirds of a run offered {CAPACITY_FRACTION:g}× capacity")
        for fraction in P50_FRACTIONS:
            name = f"{mode}: p50 at {fraction:g}× capacity"
            target = f"within ±{P50_TOLERANCE:.0%} of the model"
            point = rates.get((mode, fraction))
            if not point or point.p50 is None or not point.model or not point.model.p50:
                yield not_measured("fidelity", name, target, "no such run")
                continue
            ratio = point.p50 / point.model.p50
            yield Goal("fidelity", name, target, f"{point.p50:.3f} s vs {point.model.p50:.3f} s ({ratio:.3f}×)",
                       ratio, within(ratio, P50_TOLERANCE),
                       f"{point.arrivals} arrivals, the model replays the same schedule")


def async_scale(results: Results) -> Iterator[Goal]:
    name = f"async: makespan, N = {SCALE_N:,}, connector limit ≥ N"
    target = f"≤ {SCALE_MAX:g} s at D = {GOAL_DELAY:g} s"
    found = [(b, b.makespan, b.delay) for b in results.bursts if b.mode == "async" and b.n == SCALE_N
             and b.caps and b.caps.pool_limit is not None and (b.caps.pool_limit == 0 or b.caps.pool_limit >= SCALE_N)]
    measured = [(b, makespan, delay) for b, makespan, delay in found if makespan is not None and delay is not None]
    if not measured:
        yield not_measured("async scale", name, target, "no such burst in this run")
        return
    burst, makespan, delay = measured[0]
    limit = SCALE_MAX * delay / GOAL_DELAY  # the same share of D at another delay
    detail = "after one unrecorded burst that opens the receiver's connection pool" if burst.warm else ""
    if delay != GOAL_DELAY:
        detail += f"{'; ' if detail else ''}at D = {delay:g} s: ≤ {limit:g} s"
    yield Goal("async scale", name, target, f"{makespan:.3f} s (model {burst.model:.3f} s)", makespan,
               makespan <= limit, detail)


def rounds(entry: Server | Tool, key: str = "rps") -> list[float]:
    """Each round's `key` (req/s by default; rounds hold numbers, or records with the key)."""
    values = [getattr(r, key, None) if is_dataclass(r) else r for r in entry.rounds]
    return [float(v) for v in values if isinstance(v, (int, float))]


def relative(table: Mapping[str, Server] | Mapping[str, Tool], label: str, reference: str,
             key: str = "rps") -> float | None:
    """label's `key` over reference's: the median of same-round ratios when both ran the same
    rounds (a slow stretch of the machine hits both alike), else the ratio of their medians."""
    if label not in table or reference not in table:
        return None
    mine, theirs = rounds(table[label], key), rounds(table[reference], key)
    if mine and len(mine) == len(theirs) and all(theirs):
        return statistics.median(a / b for a, b in zip(mine, theirs))
    top, bottom = getattr(table[label], key), getattr(table[reference], key)
    return top / bottom if top is not None and bottom else None


def ratio_goal(group: str, name: str, target: str, table: Mapping[str, Server] | Mapping[str, Tool] | None,
               numerator: str, denominator: str, minimum: float, why_missing: str) -> Goal:
    ratio = relative(table, numerator, denominator) if table else None
    if not table or ratio is None:
        return not_measured(group, name, target, why_missing)
    top, bottom = table[numerator].rps, table[denominator].rps
    return Goal(group, name, target, f"{top:,.0f} vs {bottom:,.0f} req/s ({ratio:.2f}×)", ratio,
                ratio >= minimum - 1e-12,
                "the median of same-round ratios" if len(rounds(table[numerator])) > 1 else "")


def paired_goal(group: str, name: str, target: str, block: Passthrough | None, a: str, b: str, minimum: float,
                why_missing: str) -> Goal:
    """a's throughput over b's measured side by side (bench.passthrough's pairs); else from separate runs."""
    pair: Pair | None = block.paired.get(f"{a} vs {b}") if block else None
    if not pair or pair.ratio is None:
        return ratio_goal(group, name, target, block.configs if block else None, a, b, minimum, why_missing)
    ratio, cpu = pair.ratio, pair.cpu_us
    return Goal(group, name, target, f"{ratio:.3f}× ({cpu[a]:.0f} vs {cpu[b]:.0f} µs of CPU a request)", ratio,
                ratio >= minimum - 1e-12,
                f"side by side on one core, the median of {len(pair.rounds)} rounds "
                f"({min(pair.rounds):.3f}–{max(pair.rounds):.3f})")


def throughput(results: Results) -> Iterator[Goal]:
    passthrough = results.passthrough
    missing = "pass-through not measured in this run"
    yield paired_goal("pass-through", "receiver (async, zero delay) vs the plain FastAPI proxy", "≥ 1.00×",
                      passthrough, "receiver", "FastAPI proxy", 1.0, missing)
    yield paired_goal("pass-through", "receiver (async, zero delay) vs the aiohttp.web proxy", "≥ 0.60×",
                      passthrough, "receiver", "aiohttp.web proxy", 0.6, missing)
    yield paired_goal("instrumentation", "receiver with metrics vs without", "≥ 0.95× (metrics cost ≤ 5%)",
                      passthrough, "receiver", "receiver, metrics off", 0.95, missing)
    loadgen: Loadgen | None = results.loadgen
    tools = loadgen.results if loadgen else None
    missing = "load generators not measured in this run"
    yield ratio_goal("sender capacity", "sender's top rate vs Locust FastHttpUser", "≥ 1.50×",
                     tools, "sender", "Locust FastHttpUser", 1.5, missing)
    yield ratio_goal("sender capacity", "sender's top rate vs a bare aiohttp loop", "≥ 0.80×",
                     tools, "sender", "bare aiohttp loop", 0.8, missing)


def check(results: Results) -> list[Goal]:
    """Every goal, in the order the report lists them."""
    return [*fidelity(results), *async_scale(results), *throughput(results)]


def verdict(goals: list[Goal]) -> tuple[int, int, int]:
    """(passed, failed, not measured)."""
    passed = sum(g.passed is True for g in goals)
    failed = sum(g.passed is False for g in goals)
    return passed, failed, len(goals) - passed - failed
