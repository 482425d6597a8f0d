"""The benchmark's report: Markdown for people (GitHub), rich tables for the console.

Everything here reads one results dict, the JSON `python -m bench` writes, and nothing else:
a saved run can be reported again (`python -m bench.report results.json`). Any part of it
may be missing (a quick run, a step that failed, a number that was not measured): that part
says "not measured in this run" instead of failing.

    markdown(results, charts=())  the whole document; charts: PNG paths to show in their sections
    verdict(results)              the one line: "every goal PASS" or "N of M goals FAIL: ..."
    goal_table(results)           the goals as a rich Table (PASS green, FAIL red)
    burst_table(results)          makespans, measured / model, as a rich Table (None without bursts)
    console_summary(results)      what the benchmark prints at the end: bursts, then goals
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.goals import relative
from lab.model import FORMULAS, MODES

if TYPE_CHECKING:  # rich is a benchmark requirement only: imported where the console needs it
    from rich.console import RenderableType
    from rich.table import Table

NOT_MEASURED = "not measured in this run"
DASH = "—"
# The package versions worth a mention, in this order; any others in machine.packages follow.
KEY_PACKAGES = ("fastapi", "uvicorn", "uvloop", "httptools", "aiohttp", "requests", "starlette", "locust")
PASSTHROUGH_REFERENCES = ("FastAPI proxy", "aiohttp.web proxy")
LOADGEN_REFERENCES = ("bare aiohttp loop", "Locust FastHttpUser")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


# --- reading the results: any part may be null, missing or of the wrong shape ---------------

def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _num(value: Any) -> float | None:
    """A number, or None for null, NaN, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _div(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or b is None or b == 0 else a / b


# --- formatting numbers ----------------------------------------------------------------

def seconds(value: Any) -> str:
    """Seconds: at least 3 significant digits, 2 decimals from 1 s up (10.02), "—" if missing."""
    x = _num(value)
    if x is None:
        return DASH
    if math.isinf(x):
        return "∞"
    size = abs(x)
    if size == 0:
        return "0"
    if size < 1:
        return f"{x:#.3g}"
    if size < 100:
        return f"{x:.2f}"
    if size < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def rate(value: Any) -> str:
    """Requests per second: whole numbers from 100 up (4,300), 3 significant digits below (0.450)."""
    x = _num(value)
    if x is None:
        return DASH
    if math.isinf(x):
        return "∞"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:#.3g}"


def whole_rate(value: Any) -> str:
    """Requests per second as a whole number: 4,300."""
    x = _num(value)
    return DASH if x is None else "∞" if math.isinf(x) else f"{x:,.0f}"


def ratio(value: Any) -> str:
    """A ratio: 0.85×."""
    x = _num(value)
    return DASH if x is None else "∞" if math.isinf(x) else f"{x:.2f}×"


def millis(value: Any) -> str:
    """Milliseconds, 3 significant digits: 14.0, 0.850, 120."""
    x = _num(value)
    if x is None:
        return DASH
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:#.3g}"


def share(value: Any) -> str:
    """A share as a percentage: 0%, 12.5%."""
    x = _num(value)
    if x is None:
        return DASH
    return "0%" if x == 0 else f"{x:.1%}"


def percent(value: Any) -> str:
    """A share as a whole percentage: 99%."""
    x = _num(value)
    return DASH if x is None else f"{x:.0%}"


def count(value: Any) -> str:
    x = _num(value)
    return DASH if x is None else f"{x:,.0f}"


def _vs(measured: str, model: str) -> str:
    return f"{measured} / {model}"


def _duration(value: Any) -> str:
    x = _num(value)
    if x is None:
        return DASH
    if x < 60:
        return f"{x:.0f} s"
    minutes, secs = divmod(round(x), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _date(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "date unknown"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is not None and when.utcoffset() == timezone.utc.utcoffset(None):
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M %z").strip()


def _g(value: Any) -> str:
    """A knob's value as typed: 1, 0.25, 120."""
    x = _num(value)
    return DASH if x is None else f"{x:g}"


def _cores(value: Any) -> str:
    """core 0, or cores 0, 1: pinning may give one core or a list."""
    cores = [str(c) for c in value] if isinstance(value, list) else [] if value is None else [str(value)]
    if not cores:
        return "?"
    return f"core {cores[0]}" if len(cores) == 1 else "cores " + ", ".join(cores)


# --- Markdown building blocks ------------------------------------------------------------

def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = ()) -> str:
    """A GitHub Markdown table; columns whose index is in `right` are right-aligned."""
    right = set(right)
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mark(i: int) -> str:
    return str(i).translate(_SUPERSCRIPT)


def _chart(charts: dict[str, str], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({charts[name]})", ""] if name in charts else []


# --- the sections ---------------------------------------------------------------------

def _machine_sentence(results: dict) -> str:
    machine = _dict(results.get("machine"))
    parts = []
    cpus = machine.get("cpus")
    cpu = f"{cpus} cores" if cpus is not None else "an unknown number of cores"
    if machine.get("cpu_model"):
        cpu += f" ({machine['cpu_model']})"
    parts.append(cpu)
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    packages = _dict(machine.get("packages"))
    names = [p for p in KEY_PACKAGES if p in packages] + sorted(p for p in packages if p not in KEY_PACKAGES)
    if names:
        parts.append(", ".join(f"{p} {packages[p]}" for p in names if packages[p]))
    if machine.get("wrk"):
        parts.append(str(machine["wrk"]))
    sentence = "Measured on " + "; ".join(p for p in parts if p)
    if machine.get("git"):
        sentence += f", at commit `{machine['git']}`"
    sentence += "."
    pinning = _dict(machine.get("pinning"))
    if pinning:
        sentence += (f" The server under test ran on {_cores(pinning.get('server'))}, "
                     f"the load generators on {_cores(pinning.get('load'))}.")
    else:
        sentence += " Processes were not pinned to cores."
    return sentence


def _knobs_sentence(results: dict) -> str:
    knobs = _dict(results.get("knobs"))
    if not knobs:
        return "The run's settings were not recorded."
    out = []
    if _num(knobs.get("delay")) is not None:
        out.append(f"Every upstream call takes D = {_g(knobs['delay'])} s.")
    modes = [str(m) for m in _list(knobs.get("modes"))]
    sizes = [_g(n) for n in _list(knobs.get("burst_sizes"))]
    if sizes:
        burst = f"Bursts of N = {', '.join(sizes)} simultaneous requests"
        if modes:
            burst += f" for each of {', '.join(f'`{m}`' for m in modes)}"
        if _num(knobs.get("max_makespan")) is not None:
            burst += f"; a burst whose model makespan exceeds {_g(knobs['max_makespan'])} s is skipped"
        out.append(burst + ".")
    fractions = [_g(f) for f in _list(knobs.get("rate_fractions"))]
    if fractions:
        steady = f"Steady open-loop rates at {', '.join(fractions)} × each mode's model capacity"
        if _num(knobs.get("rate_duration")) is not None:
            steady += f", {_g(knobs['rate_duration'])} s each"
        if knobs.get("arrivals"):
            steady += f", {knobs['arrivals']} arrivals"
            if knobs.get("seed") is not None:
                steady += f" (seed {knobs['seed']})"
        out.append(steady + "; latency counts from each request's intended send time.")
    caps = _dict(knobs.get("caps"))
    if caps:
        out.append(f"The receiver's caps: L = {caps.get('pool_limit', '?')} aiohttp connections "
                   f"(0 = no limit), T = {caps.get('threads', '?')} threads.")
    targets = knobs.get("targets")
    if targets == "local":
        out.append("Upstream and receivers ran as local processes on loopback.")
    elif isinstance(targets, list) and targets:
        out.append("Targets: " + ", ".join(f"<{t}>" for t in targets) + ".")
    return " ".join(out)


def verdict(results: dict) -> str:
    """One line: "every goal PASS", or "N of M goals FAIL: names", and what was not measured."""
    goals = [g for g in _list(_dict(results).get("goals")) if isinstance(g, dict)]
    if not goals:
        return "no goals were evaluated"
    failed = [str(g.get("name") or "?") for g in goals if g.get("passed") is False]
    unmeasured = [str(g.get("name") or "?") for g in goals if g.get("passed") is None]
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


def _burst_grid(results: dict) -> tuple[list[str], list[int], dict[tuple[str, int], dict]]:
    """Burst labels (first-seen order), burst sizes (ascending) and each (label, N)'s entry."""
    labels: list[str] = []
    cells: dict[tuple[str, int], dict] = {}
    for burst in _list(results.get("bursts")):
        if not isinstance(burst, dict) or _num(burst.get("n")) is None:
            continue
        label = str(burst.get("label") or burst.get("mode") or "?")
        if label not in labels:
            labels.append(label)
        cells.setdefault((label, int(burst["n"])), burst)
    sizes = sorted({n for _, n in cells})
    return labels, sizes, cells


def _burst_cell(burst: dict | None) -> tuple[str, str | None]:
    """The cell's text and, for a point without a measurement, why (for the footnote)."""
    if burst is None:
        return "", None
    status = burst.get("status") or "ok"
    measured = _num(burst.get("makespan"))
    if status == "ok" and measured is not None:
        text = _vs(seconds(measured), seconds(burst.get("model")))
        failed = _num(burst.get("failed"))
        return (text + f" ({failed:.0f} failed)" if failed else text), None
    model = _num(burst.get("model"))
    text = DASH if model is None else _vs(DASH, seconds(model))
    if status == "ok":
        return text, burst.get("reason") or "no makespan recorded"
    return text, f"{status}: {burst.get('reason') or 'no reason given'}"


def _bursts_section(results: dict) -> list[str]:
    out = ["## Bursts: makespan vs N", ""]
    labels, sizes, cells = _burst_grid(results)
    if not cells:
        return out + [NOT_MEASURED + ".", ""]
    out += ["N requests sent at the same moment; each cell is the makespan (first send to last answer) "
            "in seconds, **measured / model**.", ""]
    reasons: dict[str, list[str]] = {}  # reason -> where it applies, in table order
    rows = []
    for n in sizes:
        row = [str(n)]
        for label in labels:
            text, reason = _burst_cell(cells.get((label, n)))
            if reason is not None:
                where = reasons.setdefault(reason, [])
                where.append(f"{label} N={n}")
                text += _mark(list(reasons).index(reason) + 1)
            row.append(text)
        rows.append(row)
    out += [_table(["N", *labels], rows, right=range(len(labels) + 1)), ""]
    for i, (reason, where) in enumerate(reasons.items(), 1):
        points = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
        out.append(f"{_mark(i)} {reason} ({points})  ")
    if reasons:
        out.append("")
    modes = []
    for label in labels:
        mode = next((b.get("mode") for (lab, _), b in cells.items() if lab == label), None)
        if mode in FORMULAS and mode not in modes:
            modes.append(mode)
    if modes:
        out += ["The model's makespans: " + ", ".join(f"`{m}` {FORMULAS[m]}" for m in modes)
                + " (README, \"The model\").", ""]
    return out


def _dropped_share(row: dict) -> float | None:
    """Dropped requests as a share of all scheduled: the sender counts a dropped one apart from `sent`."""
    dropped, sent = _num(row.get("dropped")), _num(row.get("sent"))
    if dropped is None or sent is None:
        return None
    return _div(dropped, sent + dropped)


def _fraction(row: dict) -> float | None:
    fraction = _num(row.get("fraction"))
    return fraction if fraction is not None else _div(row.get("offered"), row.get("capacity"))


def _mode_order(modes: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(modes))
    return [m for m in MODES if m in seen] + [m for m in seen if m not in MODES]


def _rates_by_mode(results: dict) -> dict[str, list[dict]]:
    rows = [r for r in _list(results.get("rates")) if isinstance(r, dict)]
    by_mode: dict[str, list[dict]] = {}
    for mode in _mode_order(str(r.get("mode") or "?") for r in rows):
        mine = [r for r in rows if str(r.get("mode") or "?") == mode]
        by_mode[mode] = sorted(mine, key=lambda r: (_fraction(r) is None, _fraction(r) or 0.0))
    return by_mode


def _rates_section(results: dict) -> list[str]:
    out = ["## Steady rate", ""]
    by_mode = _rates_by_mode(results)
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
        title = f"### `{mode}`"
        about = []
        if _num(first.get("capacity")) is not None:
            about.append(f"model capacity {rate(first['capacity'])} req/s")
        if _num(first.get("max_in_flight")) is not None:
            about.append(f"at most {count(first['max_in_flight'])} in flight")
        if about:
            title += " — " + ", ".join(about)
        table = []
        for r in rows:
            model = _dict(r.get("model"))
            fraction = _fraction(r)
            offered = rate(r.get("offered")) + (f" ({fraction:.2f}×)" if fraction is not None else "")
            table.append([
                offered,
                _vs(rate(r.get("achieved")), rate(model.get("achieved"))),
                _vs(seconds(r.get("p50")), seconds(model.get("p50"))),
                _vs(seconds(r.get("p99")), seconds(model.get("p99"))),
                _vs(share(_dropped_share(r)), share(model.get("dropped_share"))),
                count(r.get("late")),
                count(r.get("errors")),
            ])
        out += [title, "", _table(headers, table, right=range(len(headers))), ""]
    return out


def _entries(block: Any, key: str) -> dict[str, dict]:
    return {str(k): v for k, v in _dict(_dict(block).get(key)).items() if isinstance(v, dict)}


def _passthrough_section(results: dict, charts: dict[str, str]) -> list[str]:
    out = ["## Pass-through at zero delay", ""]
    block = _dict(results.get("passthrough"))
    configs = _entries(block, "configs")
    if not configs:
        return out + [NOT_MEASURED + ".", ""]
    about = "Each server answers GET /tasks/task1 by calling upstream with no delay, under wrk"
    details = []
    if _num(block.get("duration")) is not None:
        details.append(f"{_g(block['duration'])} s per round")
    if _num(block.get("rounds")) is not None:
        details.append(f"{_g(block['rounds'])} rounds in rotated order, medians")
    if details:
        about += f" ({', '.join(details)})"
    about += ": what is left is each server's own cost per request."
    cores = _dict(block.get("cores"))
    if cores:
        about += (f" The server ran alone on {_cores(cores.get('server'))}; upstream and wrk shared "
                  f"{_cores(cores.get('load'))}.")
    about += " Ratios are medians of same-round ratios; compare those rather than the absolute numbers."
    references = [r for r in PASSTHROUGH_REFERENCES if r in configs]
    has_cpu = any(_num(c.get("server_cpu")) is not None for c in configs.values())
    headers = ["configuration", "req/s", *(f"× {r}" for r in references), "p50 ms", "p99 ms"]
    headers += ["server core busy"] if has_cpu else []
    rows = []
    for label, c in configs.items():
        row = [label, whole_rate(c.get("rps")), *(ratio(relative(configs, label, r)) for r in references),
               millis(c.get("p50_ms")), millis(c.get("p99_ms"))]
        rows.append(row + ([percent(c.get("server_cpu"))] if has_cpu else []))
    out += [about, "", _table(headers, rows, right=range(1, len(headers))), ""]
    paired = _dict(block.get("paired"))
    if paired:
        out += ["Side by side: the two servers of each pair on the server core at once, each under its own wrk, "
                "the first to start swapped every round. A round's ratio is the first's throughput over the "
                "second's at the same CPU (their CPU time per request); the goals use these medians.", ""]
        pair_rows = [[label, ratio(_num(_dict(pair).get("ratio"))),
                      f"{ratio(min(_dict(pair).get('rounds') or [0]))}–{ratio(max(_dict(pair).get('rounds') or [0]))}"]
                     for label, pair in paired.items()]
        out += [_table(["pair", "ratio (median)", "rounds"], pair_rows, right=range(1, 3)), ""]
    return out + _chart(charts, "passthrough.png", "requests per second per configuration")


def _loadgen_section(results: dict, charts: dict[str, str]) -> list[str]:
    out = ["## Load generators", ""]
    block = _dict(results.get("loadgen"))
    tools = _entries(block, "results")
    if not tools:
        return out + [NOT_MEASURED + ".", ""]
    about = "How fast each load generator can send on one core"
    details = []
    if block.get("endpoint"):
        details.append(f"against {block['endpoint']}")
    if _num(block.get("duration")) is not None:
        details.append(f"for {_g(block['duration'])} s")
    about += (" " + " ".join(details) if details else "") + ": the sender must never be the bottleneck."
    references = [r for r in LOADGEN_REFERENCES if r in tools]
    headers = ["tool", "req/s", *(f"× {r}" for r in references)]
    rows = [[label, whole_rate(t.get("rps")), *(ratio(relative(tools, label, r)) for r in references)]
            for label, t in tools.items()]
    out += [about, "", _table(headers, rows, right=range(1, len(headers))), ""]
    return out + _chart(charts, "loadgen.png", "requests per second per load generator")


def _spread(loads: Any) -> str:
    """A burst's spread over workers, busiest first: "2+1+1"."""
    return "+".join(str(x) for x in loads) if isinstance(loads, list) and loads else DASH


def _workers_section(results: dict) -> list[str]:
    out = ["## Workers: sync under gunicorn", ""]
    rows_in = [r for r in _list(results.get("workers")) if isinstance(r, dict)]
    if not rows_in:
        return out + [NOT_MEASURED + ".", ""]
    repeats = _dict(results.get("knobs")).get("workers_repeats")
    out += [f"Bursts of N simultaneous requests, {repeats or 'several'} of each N per configuration, against "
            "receivers under gunicorn with W uvicorn workers (not pinned: every core, as deployed). *model*: the "
            "makespan if the workers shared each burst evenly (⌈N/W⌉·D in sync mode); *spreads*: how many requests "
            "each worker took in each burst, busiest first, read off the sync answers' times (a worker answers its "
            "share one D after another); *even*: the share of bursts spread evenly; memory after the bursts, in MB: "
            "*RSS* of each worker (of the one process under uvicorn), and *PSS in all*, master included, with the "
            "pages forked processes share split among them: what the configuration costs the machine.", ""]
    headers = ["configuration", "N", "makespan, median (min–max)", "model", "spreads", "even", "RSS per worker",
               "PSS in all"]
    rows = []
    for r in rows_in:
        memory = _dict(r.get("memory"))
        per_worker = _list(memory.get("workers_mb")) or [memory.get("main_mb")]
        for n, size in _dict(r.get("sizes")).items():
            makespans = [m for m in map(_num, _list(size.get("makespans"))) if m is not None]
            span = f"{seconds(size.get('median'))} ({seconds(min(makespans))}–{seconds(max(makespans))})" \
                if makespans else DASH
            spreads = ", ".join(_spread(x) for x in _list(size.get("loads"))) if r.get("mode") == "sync" else DASH
            rows.append([r.get("label") or "?", n, span, seconds(size.get("model")), spreads,
                         percent(size.get("even_share")) if size.get("even_share") is not None else DASH,
                         " / ".join(f"{x:.0f}" for x in map(_num, per_worker) if x is not None) or DASH,
                         f"{_num(memory.get('pss_total_mb')):.0f}" if _num(memory.get("pss_total_mb")) is not None
                         else DASH])
    out += [_table(headers, rows, right=(1, 2, 3, 5, 6, 7)), ""]
    return out


def _result(goal: dict) -> str:
    passed = goal.get("passed")
    return "PASS" if passed is True else "**FAIL**" if passed is False else "not measured"


def _goals_section(results: dict) -> list[str]:
    out = ["## Goals", ""]
    goals = [g for g in _list(results.get("goals")) if isinstance(g, dict)]
    if not goals:
        return out + [NOT_MEASURED + ".", ""]
    rows = [[g.get("group") or "", g.get("name") or "?", g.get("target") or "", g.get("measured") or DASH,
             _result(g)] for g in goals]
    out += [_table(["group", "goal", "target", "measured", "result"], rows), ""]
    out += [f"**Verdict: {verdict(results)}.**", ""]
    notes = [g for g in goals if g.get("detail")]
    if notes:
        out += [f"- {g.get('name') or '?'} ({_result(g).strip('*')}): {_cell(g['detail'])}" for g in notes]
        out.append("")
    return out


def markdown(results: dict, charts: Iterable[str | Path] = ()) -> str:
    """The report as a Markdown document for GitHub.

    charts: the PNG files write_charts made, as paths relative to where the document is
    saved (or any paths: only their names are matched); each is shown in its section.
    """
    results = _dict(results)
    shown = {Path(c).name: Path(c).as_posix() for c in charts}
    profile = results.get("profile") or "unknown"
    lines = [f"# Blocking I/O inside async code: benchmark, {profile} profile, {_date(results.get('started'))}", ""]
    took = f" The run took {_duration(results['seconds'])}." if _num(results.get("seconds")) is not None else ""
    lines += [f"**Verdict: {verdict(results)}.**", ""]
    lines += ["**How this was measured.** " + _machine_sentence(results) + " " + _knobs_sentence(results) + took
              + " Times are in seconds unless marked; the model is `lab/model.py`, with per-request "
              "overheads left out.", ""]
    lines += _bursts_section(results) + _chart(shown, "makespan.png", "makespan vs N, measured and model")
    lines += _rates_section(results)
    lines += _chart(shown, "rate.png", "achieved vs offered rate")
    lines += _chart(shown, "latency.png", "p50 and p99 latency vs offered rate")
    lines += _workers_section(results)
    lines += _passthrough_section(results, shown)
    lines += _loadgen_section(results, shown)
    lines += _goals_section(results)
    return "\n".join(lines).rstrip() + "\n"


# --- the console ------------------------------------------------------------------------

def goal_table(results: dict) -> Table:
    """Every goal as a rich Table: PASS green, FAIL red, not measured dim; the verdict as caption."""
    from rich.table import Table
    from rich.text import Text

    goals = [g for g in _list(_dict(results).get("goals")) if isinstance(g, dict)]
    failed = any(g.get("passed") is False for g in goals)
    style = "bold red" if failed else "bold green" if goals else "dim"
    table = Table(title="Goals", caption=verdict(results), caption_justify="left", caption_style=style)
    for column in ("group", "goal", "target", "measured"):
        table.add_column(column, overflow="fold")
    table.add_column("result", justify="center", no_wrap=True)
    for g in goals:
        passed = g.get("passed")
        result = (Text("PASS", style="bold green") if passed is True else
                  Text("FAIL", style="bold red") if passed is False else Text("not measured", style="dim"))
        table.add_row(str(g.get("group") or ""), str(g.get("name") or "?"), str(g.get("target") or ""),
                      str(g.get("measured") or DASH), result)
    return table


def burst_table(results: dict) -> Table | None:
    """Makespans, measured / model, one row per N and one column per burst label; None without bursts."""
    from rich.table import Table
    from rich.text import Text

    labels, sizes, cells = _burst_grid(_dict(results))
    if not cells:
        return None
    table = Table(title="Bursts: makespan in s, measured / model")
    table.add_column("N", justify="right")
    for label in labels:
        table.add_column(label, justify="right", no_wrap=True)
    for n in sizes:
        row: list[Text | str] = [str(n)]
        for label in labels:
            text, reason = _burst_cell(cells.get((label, n)))
            row.append(Text(text, style="dim") if reason else text)
        table.add_row(*row)
    return table


def console_summary(results: dict) -> list[RenderableType]:
    """What the benchmark prints when it is done: the bursts, then the goals with the verdict."""
    from rich.text import Text

    bursts = burst_table(results)
    return [bursts if bursts is not None else Text(f"bursts: {NOT_MEASURED}", style="dim"), goal_table(results)]


# --- python -m bench.report: report a saved run again -----------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Write the report (Markdown) and the charts of a saved run again.")
    parser.add_argument("results", type=Path, help="the results JSON that python -m bench wrote")
    parser.add_argument("--out", type=Path, help="where to write report.md and the PNGs (default: beside the JSON)")
    parser.add_argument("--no-charts", action="store_true", help="the Markdown only (no matplotlib needed)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    charts: list[Path] = []
    if not args.no_charts:
        from bench.charts import write_charts

        charts = write_charts(results, out)
    report = out / "report.md"
    report.write_text(markdown(results, [c.relative_to(out) for c in charts]))
    for path in [report, *charts]:
        print(path)


if __name__ == "__main__":
    main()
