"""The benchmark's goals, checked from its results: PASS, FAIL, or not measured (None).

Every goal is a ratio measured side by side in the same run, never an absolute speed.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping
from dataclasses import is_dataclass

from bench.results import Burst, Goal, Loadgen, Pair, Passthrough, Results, Server, Tool, Work
from lab import model
from models import steady

FIDELITY_SIZES = (1, 2, 10, 100)  # the bursts whose makespan must sit within ±10% of the model
MAKESPAN_TOLERANCE = 0.10
CAPACITY_TOLERANCE = 0.10
P50_TOLERANCE = 0.20
P50_FRACTIONS = (0.5, 0.8)
CAPACITY_FRACTION = 2.0  # capacity is what a mode achieves when offered twice as much
SCALE_N, SCALE_MAX = 1000, 1.25  # async, connector limit ≥ N, D = 1 s: makespan ≤ 1.25 s
OVERHEAD_N = 100  # c₀, the receiver's own work a request: its loop's CPU time over a warm async burst of this N, / N
GOAL_DELAY = 1.0
# The references the pass-through servers and the load generators are compared with, in this order.
PASSTHROUGH_REFERENCES = ("FastAPI proxy", "FastAPI + httpx proxy", "aiohttp.web proxy")
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


# The async burst line with no connector limit (bench/__main__.py's series): N = 100 (c₀ is read
# from it) and N = 1,000, each after an unrecorded burst of its N. Its httpx twin is reported, not
# judged: httpx's cost a call grows with the calls its pool holds, so no one c₀ predicts it
# (report.py's table of the loop's CPU a request).
SCALE_LABEL = "async L=0"
FLOOR = "bench.references.waits"  # the server under the floor of the scale burst (bench/floors.py's first)


def scale_burst(results: Results) -> tuple[Burst, float, float, int] | None:
    """The async burst of SCALE_N with a connector limit ≥ N (0: none) on SCALE_LABEL's line (a saved run
    without labels: any): (burst, makespan, D, limit), if measured."""
    for b in results.bursts:
        limit = b.caps.pool_limit if b.caps else None
        if (b.mode == "async" and b.n == SCALE_N and (b.label or SCALE_LABEL) == SCALE_LABEL and limit is not None
                and (limit == 0 or limit >= SCALE_N) and b.makespan is not None and b.delay is not None):
            return b, b.makespan, b.delay, limit
    return None


def async_scale(results: Results) -> Iterator[Goal]:
    name = f"async: makespan, N = {SCALE_N:,}, connector limit ≥ N"
    target = f"≤ {SCALE_MAX:g} s at D = {GOAL_DELAY:g} s"
    found = scale_burst(results)
    if found is None:
        yield not_measured("async scale", name, target, "no such burst in this run")
        return
    burst, makespan, delay, _ = found
    limit = SCALE_MAX * delay / GOAL_DELAY  # the same share of D at another delay
    detail = "after one unrecorded burst that opens the receiver's connection pool" if burst.warm else ""
    if delay != GOAL_DELAY:
        detail += f"{'; ' if detail else ''}at D = {delay:g} s: ≤ {limit:g} s"
    floor = next((f for f in results.floors if f.module == FLOOR and f.n == SCALE_N and f.makespan is not None), None)
    if floor is not None:
        detail += f"{'; ' if detail else ''}the floor here, the same burst against a server that only waits D: " \
                  f"{floor.makespan:.3f} s"
    yield Goal("async scale", name, target, f"{makespan:.3f} s (model {burst.model:.3f} s)", makespan,
               makespan <= limit, detail)


def overhead(results: Results) -> tuple[float, float] | None:
    """c₀, the receiver's own CPU time a request on its loop: (c₀, its loop CPU) from the async burst of OVERHEAD_N
    on SCALE_LABEL's line, recorded after one of its own N (its connections open, as for the burst it predicts).

    The loop's own ticks, which cost the same with no request (Burst.loop_idle, read just before),
    are taken out over the seconds the burst's loop CPU was read; a run without that reading: all of it.
    """
    for b in results.bursts:
        if b.mode == "async" and b.label == SCALE_LABEL and b.n == OVERHEAD_N and b.loop_cpu:
            ticks = b.loop_idle * b.loop_seconds if b.loop_idle is not None and b.loop_seconds else 0.0
            requests = max(b.loop_cpu - ticks, 0.0)
            return requests / OVERHEAD_N, requests
    return None


def async_scale_with_overhead(results: Results) -> Iterator[Goal]:
    """The N = 1,000 burst predicted with c₀ as work on the loop: D + N·c₀ (lab.model.work_times)."""
    name = f"async: makespan, N = {SCALE_N:,}, predicted with c₀"
    target = f"within ±{MAKESPAN_TOLERANCE:.0%} of the model with c₀"
    found, c0 = scale_burst(results), overhead(results)
    if found is None or c0 is None:
        why = "no such burst in this run" if found is None else \
            f"c₀ not measured (the async burst of N = {OVERHEAD_N}, against a local receiver)"
        yield not_measured("async scale", name, target, why)
        return
    _, makespan, delay, limit = found
    per_request, loop_cpu = c0
    predicted = model.makespan("async", SCALE_N, delay, model.Caps(pool_limit=limit, threads=1, cpu=per_request))
    ratio = makespan / predicted
    yield Goal("async scale", name, target,
               f"{makespan:.3f} s vs {predicted:.3f} s ({ratio:.3f}×), c₀ = {per_request * 1e6:.0f} µs", ratio,
               within(ratio, MAKESPAN_TOLERANCE),
               f"c₀: the receiver's event-loop thread's CPU time over a warm async burst of N = {OVERHEAD_N} "
               f"({loop_cpu:.3f} s, less its own ticks with no request), per request; the model D + N·c₀")


# The processes beside a work case's pool that share its cores (bench.work.PROCESSES, Work.busy)
OTHERS = ("receiver", "upstream", "sender")


def gil_seconds(w: Work) -> float | None:
    """A threads case without processes: the receiver's CPU seconds a request over its rate run (its work c
    and what the requests call and the loop add, all under the GIL); None: not measured."""
    rate = w.rate
    if w.processes or not w.busy or "receiver" not in w.busy or not w.busy_seconds or not rate or not rate.ok:
        return None
    return w.busy["receiver"] * w.busy_seconds / rate.ok


def work(results: Results) -> Iterator[Goal]:
    """Each work case (bench.work): its burst and its capacity against the model with c; processes above 1/c."""
    c0 = overhead(results)
    for w in results.work:
        label = w.label or "?"
        burst, rate = w.burst, w.rate
        name = f"{label}: makespan, N = {burst.n if burst else '?'}"
        target = f"within ±{MAKESPAN_TOLERANCE:.0%} of the model"
        if not burst or burst.makespan is None or not burst.model:
            yield not_measured("work", name, target, "not in this run")
        else:
            ratio = burst.makespan / burst.model
            yield Goal("work", name, target, f"{burst.makespan:.3f} s vs {burst.model:.3f} s ({ratio:.3f}×)", ratio,
                       within(ratio, MAKESPAN_TOLERANCE))
        name, target = f"{label}: capacity", f"within ±{CAPACITY_TOLERANCE:.0%} of the model"
        if not rate or rate.window_rate is None or not rate.capacity:
            yield not_measured("work", name, target, "not in this run")
            continue
        mu, how = rate.capacity, ""
        delay = burst.delay if burst and burst.delay else results.knobs.delay
        mode = next((m for m in model.MODES if m == w.mode), None)
        gil = gil_seconds(w)
        if gil is not None and mode and model.MODES_[mode].shape == "thread" and w.cpu_ms and delay:
            # Everything the receiver runs in Python holds the GIL: the work, the requests call's own
            # parsing, the loop's part; the threads share it (models/steady.py: shared_gil()).
            threads = w.threads or 40  # T, and K for def: both 40 in the sweep
            caps = model.Caps(pool_limit=100, threads=threads, tokens=threads, cpu=gil)
            mu = steady.capacity(mode, delay, caps)
            how = (f"; the model with the GIL shared, c + c_T = {gil * 1000:.1f} ms a request: the receiver's CPU "
                   f"over the run, a request (c_T = {gil * 1000 - w.cpu_ms:.1f} ms its own)")
        elif c0 is not None and not w.processes and w.cpu_ms and mode and delay:
            # c₀ computes where the work does, on the loop or under the GIL: the model takes c + c₀
            limit = burst.caps.pool_limit if burst and burst.caps and burst.caps.pool_limit is not None else 100
            caps = model.Caps(pool_limit=limit, threads=w.threads or 40, cpu=w.cpu_ms / 1000 + c0[0])
            mu = steady.capacity(mode, delay, caps)
            how = f"; the model with c + c₀, c₀ = {c0[0] * 1e6:.0f} µs"
        elif w.processes and w.cpu_ms and w.cores and w.busy and all(k in w.busy for k in OTHERS):
            # The pool computes on the cores the rest leaves it: P' = min(P, cores − their busy cores)
            others = sum(w.busy[k] for k in OTHERS)
            left = min(w.processes, w.cores - others)
            mu = min(mu, left / (w.cpu_ms / 1000))
            how = (f"; P' = {left:.2f}, the cores left after " + ", ".join(f"{k} {w.busy[k]:.2f}" for k in OTHERS)
                   + f" (the pool {w.busy.get('pool', 0):.2f})")
        ratio = rate.window_rate / mu
        yield Goal("work", name, target, f"{rate.window_rate:.3g}/s vs {mu:.3g}/s ({ratio:.3f}×)", ratio,
                   within(ratio, CAPACITY_TOLERANCE),
                   f"answers per second over the last two thirds of a run offered {CAPACITY_FRACTION:g}× capacity"
                   + ("" if w.pinned else f", on {w.cores} cores") + how)
        if w.processes and w.cpu_ms:
            above = rate.window_rate * w.cpu_ms / 1000
            yield Goal("work", f"{label}: capacity above 1/c", "> 1.00× of 1/c",
                       f"{rate.window_rate:.3g}/s vs 1/c = {1000 / w.cpu_ms:.3g}/s ({above:.2f}×)", above,
                       above > 1.0, "processes compute on more cores than the one loop or the one GIL")


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
    # the references do the receiver's work and no more; the receiver at LOG_LEVEL=warning
    yield paired_goal("pass-through", "receiver (async, zero delay) vs the plain FastAPI proxy", "≥ 0.90×",
                      passthrough, "receiver", "FastAPI proxy", 0.9, missing)
    yield paired_goal("pass-through", "receiver with httpx.AsyncClient vs the plain FastAPI + httpx proxy", "≥ 0.90×",
                      passthrough, "receiver, httpx", "FastAPI + httpx proxy", 0.9, missing)
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
    return [*fidelity(results), *async_scale(results), *async_scale_with_overhead(results), *work(results),
            *throughput(results)]


def verdict(goals: list[Goal]) -> tuple[int, int, int]:
    """(passed, failed, not measured)."""
    passed = sum(g.passed is True for g in goals)
    failed = sum(g.passed is False for g in goals)
    return passed, failed, len(goals) - passed - failed
