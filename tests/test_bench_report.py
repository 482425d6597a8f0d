"""The benchmark's report and charts, from synthetic results: every section, and no crash on gaps;
and the typed results read a saved run back as it was written."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from bench import goals
from bench.report import markdown, verdict
from bench.results import Burst, Goal, Rate, Results
from lab import model
from tools.processes import ROOT

typed = Results.from_json  # the results as the report reads them: a saved run, read back

D = 1.0
CAPS = {"pool_limit": 100, "threads": 40}
SIZES = [1, 2, 4, 10, 40, 100, 400, 1000]
CAPACITY = {"sync": 1 / D, "async": CAPS["pool_limit"] / D, "mixed": 1 / D, "threaded": CAPS["threads"] / D,
            "def": 40 / D}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def burst(label: str, mode: model.Mode, n: int, caps: dict = CAPS, max_makespan: float = 120.0) -> dict:
    times = model.completion_times(mode, n, D, model.Caps(**caps))
    entry = {"label": label, "mode": mode, "n": n, "delay": D, "caps": caps, "model": times[-1],
             "model_times": times, "failed": 0}
    if times[-1] > max_makespan:
        return {**entry, "status": "skipped", "reason": f"model {times[-1]:g} s > --max-makespan {max_makespan:g} s",
                "makespan": None, "completion_times": None}
    measured = [t * 1.004 + 0.003 * k for k, t in enumerate(times, 1)]
    return {**entry, "status": "ok", "reason": None, "makespan": measured[-1], "completion_times": measured}


def rate_row(mode: str, fraction: float) -> dict:
    capacity = CAPACITY[mode]
    offered = fraction * capacity
    load = min(fraction, 1.0)
    queue = max(0.0, fraction - 1.0) * 10  # grows past capacity
    achieved = load * capacity
    scheduled = round(offered * 20)
    dropped = round(scheduled * max(0.0, 1 - 1 / fraction))  # the sender counts these apart from `sent`
    sent = scheduled - dropped
    return {"mode": mode, "fraction": fraction, "offered": offered, "capacity": capacity, "duration": 20.0,
            "max_in_flight": 10, "arrivals": "poisson", "sent": sent, "ok": sent, "errors": 0,
            "dropped": dropped, "late": 0, "achieved": achieved * 0.98, "p50": D * (1 + load + queue) * 1.02,
            "p99": D * (1 + 3 * load + 2 * queue) * 1.05,
            "model": {"achieved": achieved, "p50": D * (1 + load + queue), "p99": D * (1 + 3 * load + 2 * queue),
                      "dropped_share": dropped / scheduled if scheduled else 0.0}}


def passthrough() -> dict:
    rps = {"receiver": 4300.0, "receiver, LOG_LEVEL=info": 2900.0, "receiver, metrics off": 4700.0,
           "FastAPI proxy": 5100.0, "aiohttp.web proxy": 9800.0}
    return {"duration": 10, "rounds": 3, "cores": {"server": 0, "load": 1},
            "configs": {label: {"rps": v, "rounds": [{"rps": v * f} for f in (0.97, 1.0, 1.02)],
                                "p50_ms": 14.0 * 4300 / v, "p99_ms": 30.0 * 4300 / v, "server_cpu": 0.99}
                        for label, v in rps.items()},
            "paired": {"receiver vs receiver, metrics off": {
                "a": "receiver", "b": "receiver, metrics off", "ratio": 0.975, "rounds": [0.96, 0.975, 0.99],
                "cpu_us": {"receiver": 210.0, "receiver, metrics off": 205.0}}}}


def workers_row(label: str, mode: model.Mode, count: int, spreads: list[list[int]]) -> dict:
    caps = model.Caps(100, 40, count)
    loads = spreads if mode == "sync" else [None] * len(spreads)
    makespans = [model.makespan_spread(mode, x or [4], D, caps) + 0.01 for x in loads]
    even = sorted(model.even_spread(4, count), reverse=True)
    return {"label": label, "mode": mode, "workers": count, "accept": "shared" if count > 1 else None, "delay": D,
            "sizes": {"4": {"model": model.makespan(mode, 4, D, caps), "makespans": makespans,
                            "median": sorted(makespans)[len(makespans) // 2], "loads": loads,
                            "even_share": sum(x == even for x in loads) / len(loads) if mode == "sync" else None}},
            "memory": {"main_mb": 60.0, "workers_mb": [55.0] * count if count > 1 else [],
                       "total_mb": 60 + 55.0 * (count > 1) * count, "pss_total_mb": 58 + 40.0 * (count > 1) * count}}


def goal(group: str, name: str, passed: bool | None, value: float | None = 1.0) -> dict:
    return {"group": group, "name": name, "target": "within ±10% of the model",
            "measured": None if passed is None else f"{value:.3f}×", "value": value if passed is not None else None,
            "passed": passed, "detail": "receiver | metrics: 2 s" if passed is False else ""}


@pytest.fixture
def full() -> dict:
    labels: list[tuple[str, model.Mode, dict]] = [
        ("sync", "sync", CAPS), ("async", "async", CAPS), ("mixed", "mixed", CAPS), ("threaded", "threaded", CAPS),
        ("async L=0", "async", {"pool_limit": 0, "threads": 40})]
    return {
        "version": 1, "profile": "full", "started": "2026-11-25T03:00:00+00:00", "seconds": 1234.5,
        "machine": {"cpus": 2, "cpu_model": "AMD EPYC 7B13", "python": "3.11.7", "platform": "Linux-6.1-x86_64",
                    "packages": {"aiohttp": "3.14.5", "fastapi": "0.125.0", "uvicorn": "0.38.0", "requests": "2.33.0"},
                    "wrk": "wrk 4.1.0", "git": "abc1234", "pinning": {"server": [0], "load": [1]}},
        "knobs": {"delay": D, "modes": list(model.MODES), "burst_sizes": SIZES, "max_makespan": 120.0,
                  "rate_fractions": [0.25, 0.5, 0.8, 1.0, 1.25, 2.0], "rate_duration": 20.0, "arrivals": "poisson",
                  "seed": 1, "caps": CAPS, "targets": "local"},
        "bursts": [burst(label, mode, n, caps) for label, mode, caps in labels for n in SIZES],
        "rates": [rate_row(mode, f) for mode in model.MODES for f in (0.25, 0.5, 0.8, 1.0, 1.25, 2.0)],
        "workers": [workers_row("sync, 1 worker (uvicorn)", "sync", 1, [[4], [4]]),
                    workers_row("sync, 4 workers", "sync", 4, [[2, 1, 1], [1, 1, 1, 1]]),
                    workers_row("async, 1 worker (uvicorn)", "async", 1, [[4], [4]])],
        "work": [{"label": "async, c = 20 ms", "mode": "async", "cpu_ms": 20.0, "processes": 0, "cores": 1,
                  "threads": 40, "pinned": True, "burst": burst("async, c = 20 ms", "async", 10),
                  "rate": rate_row("async", 2.0)}],
        "passthrough": passthrough(),
        "loadgen": {"duration": 10, "endpoint": "upstream /work?delay=0",
                    "results": {"sender": {"rps": 5000.0}, "Locust FastHttpUser": {"rps": 3000.0},
                                "bare aiohttp loop": {"rps": 5500.0}}},
        "goals": [goal("fidelity", "sync makespan N=10", True, 1.002),
                  goal("fidelity", "mixed makespan N=100", False, 1.31),
                  goal("async scale", "async N=1000 within 1.5 D", True, 1.1),
                  goal("pass-through", "receiver ≥ 0.8× FastAPI proxy", False, 0.84),
                  goal("sender capacity", "sender ≥ 0.8× bare aiohttp loop", None)],
    }


@pytest.fixture
def quick() -> dict:
    """A quick run: two burst points (one skipped), nothing else measured, nulls where allowed."""
    return {
        "version": 1, "profile": "quick", "started": "2026-11-25T03:00:00+00:00", "seconds": None,
        "machine": {"cpus": 2, "cpu_model": None, "python": "3.11.7", "platform": None, "packages": {},
                    "wrk": None, "git": None, "pinning": None},
        "knobs": {"delay": 0.2, "modes": ["sync"], "burst_sizes": [2, 1000], "max_makespan": 5.0,
                  "rate_fractions": [], "rate_duration": None, "arrivals": "poisson", "seed": 1, "caps": CAPS,
                  "targets": ["http://127.0.0.1:8001"]},
        "bursts": [{**burst("sync", "sync", 2), "makespan": 2.01, "model": None},
                   burst("sync", "sync", 1000, max_makespan=5.0)],
        "rates": [], "passthrough": None, "loadgen": None,
        "goals": [goal("fidelity", "sync makespan N=2", None)],
    }


SECTIONS = ("Bursts: makespan vs N", "Steady rate", "Workers: sync under gunicorn", "Work: c of CPU a request",
            "Pass-through at zero delay", "Load generators", "Goals")


def sections(text: str) -> dict[str, str]:
    """Each "## " section's body, by heading."""
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in text.split("\n## ")[1:]}


def test_markdown_has_every_section_and_the_verdict(full):
    text = markdown(typed(full))
    assert text.startswith("# ") and "full profile, 2026-11-25 03:00 UTC" in text.splitlines()[0]
    assert "**How this was measured.**" in text
    assert "2 cores (AMD EPYC 7B13)" in text and "aiohttp 3.14.5" in text
    assert "server under test ran on core 0, the load generators on core 1" in text
    body = sections(text)
    assert list(body) == list(SECTIONS)
    assert "not measured in this run" not in text
    bursts = body["Bursts: makespan vs N"]
    assert "| N | sync | async | mixed | threaded | async L=0 |" in bursts
    assert "| 10 | 10.07 / 10.00 | 1.03 / 1.00 | 11.07 / 11.00 | 1.03 / 1.00 | 1.03 / 1.00 |" in bursts
    assert "| 1000 | — / 1,000³ | 13.04 / 10.00 | — / 1,001⁴ |" in bursts  # skipped: no measurement
    # every reason once, under the table, with the cells it explains
    assert bursts.count("model 400 s > --max-makespan 120 s") == 1
    assert "¹ skipped: model 400 s > --max-makespan 120 s (sync N=400)" in bursts
    rates = body["Steady rate"]
    assert all(f"### `{mode}`" in rates for mode in model.MODES)
    assert "| 0.250 (0.25×) | 0.245 / 0.250 | 1.27 / 1.25 |" in rates
    assert "| 200 (2.00×) | 98.0 / 100 |" in rates and "50.0% / 50.0%" in rates
    workers = body["Workers: sync under gunicorn"]
    assert "| sync, 1 worker (uvicorn) | 4 | 4.01 (4.01–4.01) | 4.00 | 4, 4 | 100% | 60 | 58 |" in workers
    assert ("| sync, 4 workers | 4 | 2.01 (1.01–2.01) | 1.00 | 2+1+1, 1+1+1+1 | 50% | 55 / 55 / 55 / 55 | 218 |"
            in workers)
    assert "| async, 1 worker (uvicorn) | 4 | 1.01 (1.01–1.01) | 1.00 | — | — | 60 | 58 |" in workers
    assert "| receiver | 4,300 | 0.84× | 0.44× | 14.0 | 30.0 | 99% |" in body["Pass-through at zero delay"]
    assert "| receiver vs receiver, metrics off | 0.97× | 0.96×–0.99× |" in body["Pass-through at zero delay"]
    assert "| sender | 5,000 | 0.91× | 1.67× |" in body["Load generators"]
    goals = body["Goals"]
    assert "| fidelity | mixed makespan N=100 | within ±10% of the model | 1.310× | **FAIL** |" in goals
    assert "| sender ≥ 0.8× bare aiohttp loop | within ±10% of the model | — | not measured |" in goals
    line = ("**Verdict: 2 of 5 goals FAIL: mixed makespan N=100, receiver ≥ 0.8× FastAPI proxy; "
            "1 not measured: sender ≥ 0.8× bare aiohttp loop.**")
    assert line in goals and line in text.split("\n## ")[0]  # under the goals, and at the top
    assert "receiver \\| metrics" in goals  # a "|" inside a cell does not break the table


def test_markdown_embeds_the_charts_it_is_given(full):
    text = markdown(typed(full), ["makespan.png", "charts/rate.png"])
    assert "![makespan vs N, measured and model](makespan.png)" in text
    assert "(charts/rate.png)" in text and "latency.png" not in text


def test_verdicts(full):
    for g in full["goals"]:
        g["passed"] = True
    assert verdict(typed(full)) == "every goal PASS (5 of 5)"
    assert "**Verdict: every goal PASS (5 of 5).**" in markdown(typed(full))
    full["goals"][0]["passed"] = None
    assert verdict(typed(full)) == "every measured goal PASS (4 of 5); 1 not measured: sync makespan N=10"
    assert verdict(typed({"goals": []})) == "no goals were evaluated"


def test_a_quick_run_with_gaps_reports_what_was_not_measured(quick):
    text = markdown(typed(quick))
    assert "quick profile" in text and "not pinned" in text
    body = sections(text)
    assert list(body) == list(SECTIONS)
    for name in ("Steady rate", "Workers: sync under gunicorn", "Work: c of CPU a request",
                 "Pass-through at zero delay", "Load generators"):
        assert body[name].strip() == "not measured in this run.", name
    assert "| 2 | 2.01 / — |" in body["Bursts: makespan vs N"]  # the model's value is null
    assert "| 1000 | — / 1,000¹ |" in body["Bursts: makespan vs N"]
    assert verdict(typed(quick)) == "no goal measured (1 not measured: sync makespan N=2)"


@pytest.mark.parametrize("results", [{}, {"version": 1}, None,
                                     {"bursts": None, "rates": None, "goals": None, "machine": None, "knobs": None,
                                      "passthrough": {"configs": None}, "loadgen": {"results": {}}}])
def test_an_empty_result_still_reports(results):
    body = sections(markdown(typed(results)))
    assert list(body) == list(SECTIONS)
    assert all(part.strip() == "not measured in this run." for part in body.values())


def test_null_numbers_everywhere_do_not_crash(full):
    broken = copy.deepcopy(full)
    for entry in broken["bursts"] + broken["rates"]:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key != "n":
                entry[key] = None
        entry["model"] = None
    for config in broken["passthrough"]["configs"].values():
        config.update(rps=None, p50_ms=None, p99_ms=None, rounds=[])
    broken["loadgen"]["results"]["sender"] = {"rps": float("nan")}
    broken["machine"]["packages"] = None
    broken["goals"][0] = {"passed": True}
    body = sections(markdown(typed(broken)))
    assert "| — / — | — / — | — / — | — / — |" in body["Steady rate"]
    assert "| 10 | —¹ | —¹ | —¹ | —¹ | —¹ |" in body["Bursts: makespan vs N"]
    assert "¹ no makespan recorded (sync N=1, async N=1, mixed N=1, threaded N=1, async L=0 N=1, sync N=2 " \
           "and 30 more)" in body["Bursts: makespan vs N"]
    assert "| sender | — | — | — |" in body["Load generators"]


def test_goal_table_colors_the_results(full):
    pytest.importorskip("rich", reason="rich comes with requirements-bench.txt")
    from rich.console import Console

    from bench.console import console_summary, goal_table

    table = goal_table(typed(full))
    results = {str(cell): cell.style for cell in table.columns[-1]._cells}
    assert results == {"PASS": "bold green", "FAIL": "bold red", "not measured": "dim"}
    console = Console(record=True, width=160, color_system=None)
    for renderable in console_summary(typed(full)):
        console.print(renderable)
    shown = console.export_text()
    assert "2 of 5 goals FAIL" in shown and "10.07 / 10.00" in shown
    empty = Console(record=True, width=160, color_system=None)
    for renderable in console_summary(typed({})):
        empty.print(renderable)
    assert "bursts: not measured in this run" in empty.export_text()


def test_charts_are_png_files_and_only_those_with_data(full, quick, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib comes with requirements-bench.txt")
    from bench.charts import write_charts

    names = ["makespan.png", "rate.png", "latency.png", "passthrough.png", "loadgen.png"]
    written = write_charts(typed(full), tmp_path / "full")
    assert [p.name for p in written] == names
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, (path.name, len(data))

    again = write_charts(typed(quick), tmp_path / "quick")
    assert [p.name for p in again] == ["makespan.png"]
    assert sorted(p.name for p in (tmp_path / "quick").iterdir()) == ["makespan.png"]
    again_and_again = write_charts(typed(quick), tmp_path / "quick-again")
    assert again_and_again[0].read_bytes() == again[0].read_bytes()  # deterministic

    assert write_charts(typed({"bursts": [], "rates": None}), tmp_path / "none") == []


def test_the_committed_results_read_back_typed_and_write_back_as_they_were():
    path = ROOT / "docs/performance/results.json"
    text = path.read_text()
    results = Results.from_json(json.loads(text))
    assert json.dumps(results.to_json(), indent=1) + "\n" == text  # how python -m bench writes it: every key, in order
    assert all(isinstance(b, Burst) for b in results.bursts) and all(isinstance(r, Rate) for r in results.rates)
    assert results.passthrough.configs["receiver"].rounds[0].rps > 0 and results.loadgen.results["sender"].rps > 0
    assert all(isinstance(g, Goal) for g in results.goals) and len(results.goals) == len(json.loads(text)["goals"])
    assert Results.from_json(results.to_json()) == results


def test_what_does_not_fit_is_read_as_missing():
    results = Results.from_json({"bursts": [{"n": "4", "makespan": float("nan"), "label": 3, "caps": []}, "x"],
                                 "rates": None, "machine": {"packages": {"aiohttp": None}}, "knobs": 7,
                                 "passthrough": {"configs": {"a": {"rps": True, "rounds": [1.0, {"rps": 2}]}}}})
    (burst,) = results.bursts
    assert (burst.n, burst.makespan, burst.label, burst.caps) == (None, None, None, None)
    assert results.rates == [] and results.machine.packages == {"aiohttp": None} and results.knobs.modes == []
    server = results.passthrough.configs["a"]
    assert server.rps is None and [r.rps for r in server.rounds] == [2]
    assert results.loadgen is None and dataclasses.asdict(results)["loadgen"] is None


def test_the_loop_cpu_table_lists_each_async_burst_of_a_hundred_or_more_that_measured_it(full):
    for b in full["bursts"]:
        if b["mode"] == "async" and b["n"] in (100, 1000) and b["status"] == "ok":
            b["loop_cpu"] = 0.0005 * b["n"]
    full["bursts"].append({**burst("async httpx L=0", "async", 1000, caps={"pool_limit": 0, "threads": 40}),
                           "loop_cpu": 3.8})
    table = sections(markdown(typed(full)))["Bursts: makespan vs N"]
    table = table[table.index("### The event loop's CPU a request, by async client"):]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == ["| `async` | 100 | 1.30 / 1.00 | 0.0500 | 500 µs |",
                    "| `async` | 1,000 | 13.04 / 10.00 | 0.500 | 500 µs |",
                    "| `async L=0` | 100 | 1.30 / 1.00 | 0.0500 | 500 µs |",
                    "| `async L=0` | 1,000 | 4.00 / 1.00 | 0.500 | 500 µs |",
                    "| `async httpx L=0` | 1,000 | 4.00 / 1.00 | 3.80 | 3,800 µs |"], rows
    del full["bursts"][-1]
    for b in full["bursts"]:
        b.pop("loop_cpu", None)
    assert "### The event loop's CPU a request" not in markdown(typed(full))  # nothing measured, no table


def test_the_floor_table_puts_the_receivers_scale_burst_beside_servers_that_do_less(full):
    assert "### The floor under" not in markdown(typed(full))  # no floors measured, no table
    scale = next(b for b in full["bursts"] if b["label"] == "async L=0" and b["n"] == 1000)
    scale["loop_cpu"] = 0.5
    full["floors"] = [{"label": "waits D, no call", "module": "bench.references.waits", "n": 1000, "delay": D,
                       "makespan": 1.25, "cpu": 0.18},
                      {"label": "aiohttp.web proxy, L=0", "module": "bench.references.aiohttp_proxy", "n": 1000,
                       "delay": D, "makespan": 1.4, "cpu": None}]
    text = markdown(typed(full))
    table = text[text.index("### The floor under a burst of 1,000"):]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| server")]
    assert rows[:3] == ["| the receiver, `async L=0` | 4.00 | 3.00 | 0.500 (its loop) |",
                        "| waits D, no call | 1.25 | 0.250 | 0.180 |",
                        "| aiohttp.web proxy, L=0 | 1.40 | 0.400 | — |"], rows
    # the scale goal says what the floor is
    (goal,) = [g for g in goals.check(typed(full)) if g.name == "async: makespan, N = 1,000, connector limit ≥ N"]
    assert goal.detail.endswith("the floor here, the same burst against a server that only waits D: 1.250 s")


def test_a_saved_run_is_reported_with_its_own_goals_or_rechecked_by_this_trees(tmp_path, capsys):
    from bench import report

    saved = json.loads((ROOT / "docs/performance/2026-12-06-work/results.json").read_text())
    stale = {"group": "work", "name": "a goal this tree no longer has", "target": "≥ 1×", "measured": "0.5×",
             "value": 0.5, "passed": False, "detail": ""}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**saved, "goals": [stale]}))
    report.main([str(path), "--no-charts"])
    assert "a goal this tree no longer has" in (tmp_path / "report.md").read_text()
    report.main([str(path), "--no-charts", "--recheck", "--out", str(tmp_path / "rechecked")])
    rechecked = (tmp_path / "rechecked" / "report.md").read_text()
    assert "a goal this tree no longer has" not in rechecked
    expected = goals.check(Results.from_json(saved))
    assert len(expected) > 40 and all(g.name in rechecked for g in expected if g.name)
    assert str(tmp_path / "rechecked" / "report.md") in capsys.readouterr().out
