"""The benchmark's report: Markdown for people (GitHub); bench/console.py prints its tables.

Everything here reads one Results (bench/results.py: what `python -m bench` measured, or a
saved results.json read back with Results.from_json), and nothing else: a saved run can be
reported again (`python -m bench.report results.json`). Any part of it may be missing (a
quick run, a step that failed, a number that was not measured): that part says "not
measured in this run" instead of failing.

    markdown(results, charts=())  the whole document; charts: PNG paths to show in their sections
    verdict(results)              the one line: "every goal PASS" or "N of M goals FAIL: ..."
    burst_cell(burst)             a burst's cell, measured / model, and why it has no measurement
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from bench import format as fmt
from bench.goals import LOADGEN_REFERENCES, PASSTHROUGH_REFERENCES, check, relative, scale_burst
from bench.results import Burst, Goal, Knobs, Machine, Memory, Results, Summary
from lab.model import FORMULAS

NOT_MEASURED = "not measured in this run"
# The package versions worth a mention, in this order; any others in machine.packages follow.
KEY_PACKAGES = ("fastapi", "uvicorn", "uvloop", "httptools", "aiohttp", "requests", "starlette", "locust")


def _chart(charts: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({charts[name]})", ""] if name in charts else []


# --- the sections ---------------------------------------------------------------------

def _machine_sentence(m: Machine) -> str:
    cpu = f"{m.cpus} cores" if m.cpus is not None else "an unknown number of cores"
    cpu += f" ({m.cpu_model})" if m.cpu_model else ""
    names = [p for p in KEY_PACKAGES if p in m.packages] + sorted(p for p in m.packages if p not in KEY_PACKAGES)
    parts = [cpu, f"Python {m.python}" if m.python else "", m.platform or "",
             ", ".join(f"{p} {m.packages[p]}" for p in names if m.packages[p]), m.wrk or ""]
    sentence = "Measured on " + "; ".join(p for p in parts if p)
    sentence += (f", at commit `{m.git}`" if m.git else "") + "."
    if m.pinning:
        return sentence + (f" The server under test ran on {fmt.cores(m.pinning.get('server'))}, "
                           f"the load generators on {fmt.cores(m.pinning.get('load'))}.")
    return sentence + " Processes were not pinned to cores."


def _knobs_sentence(k: Knobs) -> str:
    if k == Knobs():
        return "The run's settings were not recorded."
    out = [f"Every upstream call takes D = {fmt.knob(k.delay)} s."] if k.delay is not None else []
    if k.burst_sizes:
        burst = f"Bursts of N = {', '.join(fmt.knob(n) for n in k.burst_sizes)} simultaneous requests"
        burst += f" for each of {', '.join(f'`{m}`' for m in k.modes)}" if k.modes else ""
        if k.max_makespan is not None:
            burst += f"; a burst whose model makespan exceeds {fmt.knob(k.max_makespan)} s is skipped"
        out.append(burst + ".")
    if k.rate_fractions:
        fractions = ", ".join(fmt.knob(f) for f in k.rate_fractions)
        steady = f"Steady open-loop rates at {fractions} × each mode's model capacity"
        steady += f", {fmt.knob(k.rate_duration)} s each" if k.rate_duration is not None else ""
        if k.arrivals:
            steady += f", {k.arrivals} arrivals" + (f" (seed {k.seed})" if k.seed is not None else "")
        out.append(steady + "; latency counts from each request's intended send time.")
    if k.caps:
        limit, threads = (x if x is not None else "?" for x in (k.caps.pool_limit, k.caps.threads))
        out.append(f"The receiver's caps: L = {limit} aiohttp connections (0 = no limit), T = {threads} threads.")
    if k.targets == "local":
        out.append("Upstream and receivers ran as local processes on loopback.")
    elif isinstance(k.targets, list) and k.targets:
        out.append("Targets: " + ", ".join(f"<{t}>" for t in k.targets) + ".")
    return " ".join(out)


def verdict(results: Results) -> str:
    """One line: "every goal PASS", or "N of M goals FAIL: names", and what was not measured."""
    goals = results.goals
    if not goals:
        return "no goals were evaluated"
    failed = [g.name or "?" for g in goals if g.passed is False]
    unmeasured = [g.name or "?" for g in goals if g.passed is None]
    total = len(goals)
    if failed:
        line = f"{len(failed)} of {total} goals FAIL: {', '.join(failed)}"
    elif len(unmeasured) == total:
        return f"no goal measured ({total} not measured: {', '.join(unmeasured)})"
    elif unmeasured:
        line = f"every measured goal PASS ({total - len(unmeasured)} of {total})"
    else:
        return f"every goal PASS ({total} of {total})"
    return line + (f"; {len(unmeasured)} not measured: {', '.join(unmeasured)}" if unmeasured else "")


def burst_cell(burst: Burst | None) -> tuple[str, str | None]:
    """The cell's text and, for a point without a measurement, why (for the footnote)."""
    if burst is None:
        return "", None
    status = burst.status or "ok"
    if status == "ok" and burst.makespan is not None:
        text = fmt.vs(fmt.seconds(burst.makespan), fmt.seconds(burst.model))
        return (text + f" ({burst.failed:.0f} failed)" if burst.failed else text), None
    text = fmt.DASH if burst.model is None else fmt.vs(fmt.DASH, fmt.seconds(burst.model))
    if status == "ok":
        return text, burst.reason or "no makespan recorded"
    return text, f"{status}: {burst.reason or 'no reason given'}"


def _bursts_section(results: Results) -> list[str]:
    out = ["## Bursts: makespan vs N", ""]
    labels, sizes, cells = results.burst_grid()
    if not cells:
        return out + [NOT_MEASURED + ".", ""]
    out += ["N requests sent at the same moment; each cell is the makespan (first send to last answer) "
            "in seconds, **measured / model**.", ""]
    reasons: dict[str, list[str]] = {}  # reason -> where it applies, in table order
    rows = []
    for n in sizes:
        row = [str(n)]
        for label in labels:
            text, reason = burst_cell(cells.get((label, n)))
            if reason is not None:
                reasons.setdefault(reason, []).append(f"{label} N={n}")
                text += fmt.mark(list(reasons).index(reason) + 1)
            row.append(text)
        rows.append(row)
    out += [fmt.table(["N", *labels], rows, right=range(len(labels) + 1)), ""]
    for i, (reason, where) in enumerate(reasons.items(), 1):
        points = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
        out.append(f"{fmt.mark(i)} {reason} ({points})  ")
    out += [""] if reasons else []
    modes = list(dict.fromkeys(m for m in results.label_modes().values() if m in FORMULAS))
    if modes:
        out += ["The model's makespans: " + ", ".join(f"`{m}` {FORMULAS[m]}" for m in modes)
                + " (docs/model.md).", ""]
    return out


def _loop_cpu_section(results: Results) -> list[str]:
    """Each async line's bursts of N ≥ 100 with the loop's CPU measured: what a request costs the loop, by client."""
    rows = [[f"`{b.label}`", f"{b.n:,}", fmt.vs(fmt.seconds(b.makespan), fmt.seconds(b.model)),
             fmt.seconds(b.loop_cpu), f"{b.loop_cpu / b.n * 1e6:,.0f} µs"]
            for b in results.bursts
            if b.mode == "async" and b.n is not None and b.n >= 100 and b.loop_cpu and b.makespan is not None]
    if not rows:
        return []
    return ["### The event loop's CPU a request, by async client", "",
            "The receiver's event-loop thread's CPU time over each async burst (Linux's schedstat): the "
            "receiver's own cost a request, c₀. Lines with `httpx` use `RECEIVER_ASYNC_CLIENT=httpx`; `L=0`: "
            "no connection limit (else L = 100, and the rest of a burst waits for a connection).", "",
            fmt.table(["line", "N", "makespan, measured / model", "loop CPU", "a request"], rows,
                      right=range(1, 5)), ""]


def _rates_section(results: Results) -> list[str]:
    out = ["## Steady rate", ""]
    by_mode = results.rates_by_mode()
    if not by_mode:
        return out + [NOT_MEASURED + ".", ""]
    out += ["An open-loop sender offers a fixed rate as a fraction of the mode's model capacity. Each "
            "pair is **measured / model**; latency counts from each request's intended send time, so "
            "queueing anywhere (in the sender, the kernel or the receiver) shows. *Dropped*: not sent "
            "because the most requests allowed in flight were already waiting; *late*: sent behind "
            "schedule (the sender itself falling behind).", ""]
    headers = ["offered req/s (× capacity)", "achieved req/s", "p50 s", "p99 s", "dropped", "late", "errors"]
    for mode, rows in by_mode.items():
        first = rows[0]
        about = ([f"model capacity {fmt.rate(first.capacity)} req/s"] if first.capacity is not None else []) + \
                ([f"at most {fmt.count(first.max_in_flight)} in flight"] if first.max_in_flight is not None else [])
        title = f"### `{mode}`" + (" — " + ", ".join(about) if about else "")
        lines = []
        for r in rows:
            model, fraction = r.model or Summary(), r.fraction_of_capacity
            pairs = ((fmt.rate, r.achieved, model.achieved), (fmt.seconds, r.p50, model.p50),
                     (fmt.seconds, r.p99, model.p99), (fmt.share, r.dropped_of_scheduled, model.dropped_share))
            lines.append([fmt.rate(r.offered) + (f" ({fraction:.2f}×)" if fraction is not None else ""),
                          *(fmt.vs(show(measured), show(modelled)) for show, measured, modelled in pairs),
                          fmt.count(r.late), fmt.count(r.errors)])
        out += [title, "", fmt.table(headers, lines, right=range(len(headers))), ""]
    return out


def _passthrough_section(results: Results, charts: dict[str, str]) -> list[str]:
    out = ["## Pass-through at zero delay", ""]
    block = results.passthrough
    if not block or not (configs := block.configs):
        return out + [NOT_MEASURED + ".", ""]
    details = ([f"{fmt.knob(block.duration)} s per round"] if block.duration is not None else []) + \
              ([f"{fmt.knob(block.rounds)} rounds in rotated order, medians"] if block.rounds is not None else [])
    about = ("Each server answers GET /tasks/task1 by calling upstream with no delay, under wrk" + (
        f" ({', '.join(details)})" if details else "") + ": what is left is each server's own cost per request.")
    if block.cores:
        about += (f" The server ran alone on {fmt.cores(block.cores.get('server'))}; upstream and wrk shared "
                  f"{fmt.cores(block.cores.get('load'))}.")
    about += " Ratios are medians of same-round ratios; compare those rather than the absolute numbers."
    references = [r for r in PASSTHROUGH_REFERENCES if r in configs]
    has_cpu = any(c.server_cpu is not None for c in configs.values())
    headers = ["configuration", "req/s", *(f"× {r}" for r in references), "p50 ms", "p99 ms"]
    headers += ["server core busy"] if has_cpu else []
    rows = [[label, fmt.whole_rate(c.rps), *(fmt.ratio(relative(configs, label, r)) for r in references),
             fmt.millis(c.p50_ms), fmt.millis(c.p99_ms), *([fmt.percent(c.server_cpu)] if has_cpu else [])]
            for label, c in configs.items()]
    out += [about, "", fmt.table(headers, rows, right=range(1, len(headers))), ""]
    if block.paired:
        out += ["Side by side: the two servers of each pair on the server core at once, each under its own wrk, "
                "the first to start swapped every round. A round's ratio is the first's throughput over the "
                "second's at the same CPU (their CPU time per request); the goals use these medians.", ""]
        pair_rows = [[label, fmt.ratio(pair.ratio), f"{fmt.ratio(min(pair.rounds or [0]))}–"
                      f"{fmt.ratio(max(pair.rounds or [0]))}"] for label, pair in block.paired.items()]
        out += [fmt.table(["pair", "ratio (median)", "rounds"], pair_rows, right=range(1, 3)), ""]
    return out + _chart(charts, "passthrough.png", "requests per second per configuration")


def _loadgen_section(results: Results, charts: dict[str, str]) -> list[str]:
    out = ["## Load generators", ""]
    block = results.loadgen
    if not block or not (tools := block.results):
        return out + [NOT_MEASURED + ".", ""]
    details = ([f"against {block.endpoint}"] if block.endpoint else []) + \
              ([f"for {fmt.knob(block.duration)} s"] if block.duration is not None else [])
    about = ("How fast each load generator can send on one core" + (" " + " ".join(details) if details else "")
             + ": the sender must never be the bottleneck.")
    references = [r for r in LOADGEN_REFERENCES if r in tools]
    headers = ["tool", "req/s", *(f"× {r}" for r in references)]
    rows = [[label, fmt.whole_rate(t.rps), *(fmt.ratio(relative(tools, label, r)) for r in references)]
            for label, t in tools.items()]
    out += [about, "", fmt.table(headers, rows, right=range(1, len(headers))), ""]
    return out + _chart(charts, "loadgen.png", "requests per second per load generator")


def _workers_section(results: Results) -> list[str]:
    out = ["## Workers: sync under gunicorn", ""]
    if not results.workers:
        return out + [NOT_MEASURED + ".", ""]
    out += [f"Bursts of N simultaneous requests, {results.knobs.workers_repeats or 'several'} of each N per "
            "configuration, against receivers under gunicorn with W uvicorn workers (not pinned: every core, as "
            "deployed). *model*: the makespan if the workers shared each burst evenly (⌈N/W⌉·D in sync mode); "
            "*spreads*: how many requests each worker took in each burst, busiest first, read off the sync answers' "
            "times (a worker answers its share one D after another); *even*: the share of bursts spread evenly; "
            "memory after the bursts, in MB: *RSS* of each worker (of the one process under uvicorn), and *PSS in "
            "all*, master included, with the pages forked processes share split among them: what the configuration "
            "costs the machine.", ""]
    headers = ["configuration", "N", "makespan, median (min–max)", "model", "spreads", "even", "RSS per worker",
               "PSS in all"]
    rows = []
    for r in results.workers:
        memory = r.memory or Memory()
        per_worker = memory.workers_mb or ([memory.main_mb] if memory.main_mb is not None else [])
        for n, size in r.sizes.items():
            spans = [fmt.seconds(x) for x in (min(size.makespans), max(size.makespans))] if size.makespans else []
            span = f"{fmt.seconds(size.median)} ({spans[0]}–{spans[1]})" if spans else fmt.DASH
            spreads = (", ".join("+".join(map(str, x)) if x else fmt.DASH for x in size.loads)  # busiest first: 2+1+1
                       if r.mode == "sync" else fmt.DASH)
            rows.append([r.label or "?", n, span, fmt.seconds(size.model), spreads, fmt.percent(size.even_share),
                         " / ".join(f"{x:.0f}" for x in per_worker) or fmt.DASH, fmt.megabytes(memory.pss_total_mb)])
    return out + [fmt.table(headers, rows, right=(1, 2, 3, 5, 6, 7)), ""]


def _work_section(results: Results) -> list[str]:
    out = ["## Work: c of CPU a request", ""]
    if not results.work:
        return out + [NOT_MEASURED + ".", ""]
    out += ["Each request also computes c (`RECEIVER_CPU_MS`) after its call, where its mode runs the handler; "
            "with P processes (`RECEIVER_CPU_PROCESSES`) in a pool. For each case a burst of N and a run offered "
            "twice its capacity with work (`models/steady.py`: `with_work()`), beside the model with c; *capacity*: "
            "answers per second over the run's last two thirds. The pooled case is not pinned to the server core: "
            "its processes need the cores.", ""]
    headers = ["case", "N", "makespan / model", "capacity / model", "1/c"]
    rows = []
    for w in results.work:
        burst, rate = w.burst, w.rate
        span = f"{fmt.seconds(burst.makespan)} / {fmt.seconds(burst.model)}" if burst else fmt.DASH
        cap = f"{fmt.rate(rate.window_rate)} / {fmt.rate(rate.capacity)}" if rate else fmt.DASH
        rows.append([w.label or "?", burst.n if burst else fmt.DASH, span, cap,
                     fmt.rate(1000 / w.cpu_ms) if w.cpu_ms else fmt.DASH])
    return out + [fmt.table(headers, rows, right=(1, 2, 3, 4)), ""]


def _result(goal: Goal) -> str:
    return "PASS" if goal.passed is True else "**FAIL**" if goal.passed is False else "not measured"


def _goals_section(results: Results) -> list[str]:
    out = ["## Goals", ""]
    goals = results.goals
    if not goals:
        return out + [NOT_MEASURED + ".", ""]
    rows = [[g.group or "", g.name or "?", g.target or "", g.measured or fmt.DASH, _result(g)] for g in goals]
    out += [fmt.table(["group", "goal", "target", "measured", "result"], rows), "",
            f"**Verdict: {verdict(results)}.**", ""]
    notes = [f"- {g.name or '?'} ({_result(g).strip('*')}): {fmt.cell(g.detail)}" for g in goals if g.detail]
    return out + (notes + [""] if notes else [])


def _floors_section(results: Results) -> list[str]:
    """The async-scale burst against the receiver and against the servers that do less (bench.floors)."""
    if not results.floors:
        return []
    rows = []
    if (found := scale_burst(results)) is not None:
        burst, makespan, delay, _ = found
        cpu = f"{fmt.seconds(burst.loop_cpu)} (its loop)" if burst.loop_cpu else fmt.DASH
        rows.append([f"the receiver, `{burst.label or 'async'}`", fmt.seconds(makespan),
                     fmt.seconds(makespan - delay), cpu])
    rows += [[f.label or f.module or "?", fmt.seconds(f.makespan),
              fmt.seconds(f.makespan - f.delay) if f.makespan is not None and f.delay is not None else fmt.DASH,
              fmt.seconds(f.cpu)] for f in results.floors]
    n = next((f.n for f in results.floors if f.n), None)
    return [f"### The floor under a burst of {n:,}" if n else "### The floor under the async-scale burst", "",
            "The same burst, after a warm one, against servers that do less than the receiver, each alone on the "
            "server core (bench/floors.py): two that only wait D (aiohttp.web, and an asyncio.Protocol with no "
            "HTTP library), and FastAPI or aiohttp.web making the receiver's call with no connection limit "
            "and nothing else. What the ones that only wait take beyond D is the sender's and the kernel's "
            "share: no receiver's c₀ goes below it.", "",
            fmt.table(["server", "makespan", "beyond D", "server CPU"], rows, right=range(1, 4)), ""]


def markdown(results: Results, charts: Iterable[str | Path] = ()) -> str:
    """The report as a Markdown document for GitHub.

    charts: the PNG files write_charts made, as paths relative to where the document is
    saved (or any paths: only their names are matched); each is shown in its section.
    """
    shown = {Path(c).name: Path(c).as_posix() for c in charts}
    lines = [f"# Blocking I/O inside async code: benchmark, {results.profile or 'unknown'} profile, "
             f"{fmt.date(results.started)}", ""]
    took = f" The run took {fmt.duration(results.seconds)}." if results.seconds is not None else ""
    lines += [f"**Verdict: {verdict(results)}.**", ""]
    lines += ["**How this was measured.** " + _machine_sentence(results.machine) + " " + _knobs_sentence(results.knobs)
              + took + " Times are in seconds unless marked; the model is `lab/model.py`, with per-request "
              "overheads left out.", ""]
    lines += (_bursts_section(results) + _loop_cpu_section(results) + _floors_section(results)
              + _chart(shown, "makespan.png", "makespan vs N, measured and model"))
    lines += (_rates_section(results) + _chart(shown, "rate.png", "achieved vs offered rate")
              + _chart(shown, "latency.png", "p50 and p99 latency vs offered rate"))
    lines += (_workers_section(results) + _work_section(results) + _passthrough_section(results, shown)
              + _loadgen_section(results, shown)
              + _goals_section(results))
    return "\n".join(lines).rstrip() + "\n"


# --- python -m bench.report: report a saved run again -----------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Write the report (Markdown) and the charts of a saved run again.")
    parser.add_argument("results", type=Path, help="the results JSON that python -m bench wrote")
    parser.add_argument("--out", type=Path, help="where to write report.md and the PNGs (default: beside the JSON)")
    parser.add_argument("--no-charts", action="store_true", help="the Markdown only (no matplotlib needed)")
    parser.add_argument("--recheck", action="store_true",
                        help="judge the run by this tree's goals and model, not the goals it saved when it ran")
    args = parser.parse_args(argv)
    results = Results.from_json(json.loads(args.results.read_text()))
    if args.recheck:
        results = dataclasses.replace(results, goals=check(results))
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    charts: list[Path] = []
    if not args.no_charts:
        from bench.charts import write_charts  # charts import nothing of the report: no circle

        charts = write_charts(results, out)
    report = out / "report.md"
    report.write_text(markdown(results, [c.relative_to(out) for c in charts]))
    for path in [report, *charts]:
        print(path)


if __name__ == "__main__":
    main()
