"""The README and the pages under docs/: a short front door, links that work, no history.

The README says what the lab shows, how to run and test it, and links to one page per subject
under docs/; these tests hold it to that, check every relative link and every #anchor of
README.md and docs/*.md (GitHub's slugs), and that docs/configuration.md names every setting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import gil, goals
from bench.results import Results
from lab import model
from receiver.modes import HANDLERS
from receiver.settings import Settings as ReceiverSettings
from sender.settings import Settings as SenderSettings
from tests.compose import dotenv
from tools.processes import ROOT
from upstream.settings import Settings as UpstreamSettings

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = ["experiments", "model", "performance", "reliability", "configuration", "metrics", "detectors", "development",
         "seed"]
DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]
MAX_README_LINES = 250
DASHBOARD_PICTURE = "![The dashboard, drawn from its own queries](docs/dashboard.png)"
HISTORY = re.compile(r"used to |before this work|as shipped before|at the start of this", re.IGNORECASE)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without fenced code blocks (transcripts, diagrams): what a reader sees as prose."""
    return FENCE.sub("", text)


def links(text: str) -> list[str]:
    """Every link target of the prose, images included, inline code taken out first."""
    return LINK.findall(INLINE_CODE.sub("", prose(text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lowercased, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text, not its target
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (a repeated one gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_slugs_follow_githubs_rule():
    assert slug("A tour: sync → async → mixed → threaded → def → all five") == \
        "a-tour-sync--async--mixed--threaded--def--all-five"
    assert slug("3. `mixed`: one aiohttp call, then one requests call (the seed's unwritten section)") == \
        "3-mixed-one-aiohttp-call-then-one-requests-call-the-seeds-unwritten-section"
    assert slug("`sync` — model capacity 1.00 req/s, at most 10 in flight") == \
        "sync--model-capacity-100-reqs-at-most-10-in-flight"
    assert slug("Re-measure: make bench") == "re-measure-make-bench"
    assert slug("snake_case [and a link](x.md)") == "snake_case-and-a-link"


def test_readme_is_a_short_front_door():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, more than {MAX_README_LINES}"
    diagram = re.search(r"^```mermaid\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert diagram, "README.md has no ```mermaid block"
    for part in ("sender", "receiver", "upstream", "Prometheus", "Grafana"):
        assert part in diagram.group(1), f"the architecture diagram leaves out {part}"
    assert DASHBOARD_PICTURE in text
    assert any("make test" in line for line in lines), "README.md shows no test command"
    assert "docker compose up -d --wait" in text
    for url in ("http://127.0.0.1:3000", "http://127.0.0.1:9090", "http://127.0.0.1:8000/docs", "http://127.0.0.1:8001"):
        assert url in text, url
    assert any(target.startswith("docs/performance/") and target.endswith(".png") for target in links(text)), \
        "README.md shows no chart from docs/performance/"


def test_readme_keeps_the_tour_and_the_offline_section_in_order():
    text = README.read_text()
    tour = text.index("### A tour: sync → async → mixed → threaded → def → all five")
    offline = text.index("### Without a registry: offline images")
    assert tour < offline, "the offline section follows the tour"
    between = text[tour:offline].splitlines()[1:]
    assert not [line for line in between if line.startswith("#")], (
        "nothing comes between the tour and the offline section"
    )


def test_readme_links_to_every_docs_page():
    targets = {target.split("#")[0] for target in links(README.read_text())}
    missing = [page for page in PAGES if f"docs/{page}.md" not in targets]
    assert not missing, f"README.md does not link to: {missing}"
    for page in PAGES:
        assert (DOCS / f"{page}.md").exists(), page


def test_readme_shows_every_mode_with_its_code_and_formulas():
    text = README.read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z]+)` \|.*$", text, re.MULTILINE)}
    for mode in model.MODES:
        row = rows.get(mode)
        assert row, f"the README's mode table has no row for {mode}"
        assert f"receiver/modes.py:{HANDLERS[mode].__name__}" in row, mode
        assert model.FORMULAS[mode] in row, f"{mode}: makespan {model.FORMULAS[mode]} not in the table"
        assert model.CAPACITY_FORMULAS[mode] in row, (
            f"{mode}: capacity {model.CAPACITY_FORMULAS[mode]} not in the table"
        )


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_every_relative_link_resolves(document: Path):
    broken = []
    for target in links(document.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not in the repository
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: {name(resolved)} has no heading #{anchor}")
    assert not broken, f"{name(document)}: broken links: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=name)
def test_no_history_in_the_docs(document: Path):
    # The docs say what is true now; git keeps how it got there.
    found = [line.strip() for line in document.read_text().splitlines() if HISTORY.search(line)]
    assert not found, f"{name(document)} tells history: {found}"


def test_configuration_names_every_setting_and_every_env_key():
    text = (DOCS / "configuration.md").read_text()
    fields = {field.upper() for settings in (UpstreamSettings, ReceiverSettings, SenderSettings)
              for field in settings.model_fields}
    missing = sorted(knob for knob in fields | set(dotenv()) if f"`{knob}`" not in text)
    assert not missing, f"docs/configuration.md does not name: {missing}"


def test_the_model_page_shows_every_modes_makespan_with_work():
    text = (DOCS / "model.md").read_text()
    for mode in model.MODES:
        row = re.search(rf"^\| `{mode}` \| \*\*(.+?)\*\* \| \*\*(.+?)\*\* \|$", text, re.MULTILINE)
        assert row and (row[1], row[2]) == model.WORK_FORMULAS[mode], (mode, row and row.groups())


def test_experiment_seven_states_the_committed_work_run():
    # every number of its table is the committed run's (docs/performance/2026-12-06-work/results.json)
    run = json.loads((DOCS / "performance/2026-12-06-work/results.json").read_text())
    judged = {g.name: g for g in goals.check(Results.from_json(run))}
    cases = {w["label"]: w for w in run["work"] if w["cpu_ms"] == 20}
    text = (DOCS / "experiments.md").read_text()
    section = text[text.index("## 7. Computing blocks too"):]
    rows = re.findall(r"^\| `(\w+)`([^|]*) \| ([\d.]+) s \| [^|]*?([\d.]+) s \| ([\d.]+) \| [^|]*?([\d.]+) \|$",
                      section, re.MULTILINE)
    assert [mode for mode, *_ in rows] == [*model.MODES, "threaded"]
    for mode, extra, makespan, predicted, capacity, modelled in rows:
        label = f"{mode}, c = 20 ms" + (", P = 2, T = 200" if "processes" in extra else "")
        burst, rate = cases[label]["burst"], cases[label]["rate"]
        assert (float(makespan), float(predicted)) == (round(burst["makespan"], 2), round(burst["model"], 2)), label
        assert float(capacity) == float(f"{rate['window_rate']:.3g}"), label
        # the pooled case's model is P'/c, the cores the rest left it (bench.goals): the goal's own figure
        model_rate = float(re.search(r"vs ([\d.]+)/s", judged[f"{label}: capacity"].measured)[1])
        assert float(modelled) == pytest.approx(model_rate, rel=0.005), label


def test_the_readme_client_table_states_the_committed_clients_run():
    run = json.loads((DOCS / "performance/2026-12-01-clients/results.json").read_text())
    configs = run["passthrough"]["configs"]
    bursts = {(b["label"], b["n"]): b for b in run["bursts"]}
    text = README.read_text()
    section = text[text.index("## The client library"):text.index("## Test it")]
    rows = re.findall(r"^\| (aiohttp|httpx\.AsyncClient) \| ([\d,]+) \| ([\d,]+) µs \| ([\d.]+) s \| ([\d.]+) s "
                      r"\| ([\d.]+) s \|$", section, re.MULTILINE)
    assert [client for client, *_ in rows] == ["aiohttp", "httpx.AsyncClient"]
    for client, rps, cpu, hundred, waiting, thousand in rows:
        config, line = ("receiver", "async") if client == "aiohttp" else ("receiver, httpx", "async httpx")
        assert int(rps.replace(",", "")) == round(configs[config]["rps"]), client
        assert int(cpu.replace(",", "")) == round(configs[config]["cpu_us"]), client
        assert float(hundred) == round(bursts[(line, 100)]["makespan"], 2), client
        assert (bursts[(line, 1000)]["caps"]["pool_limit"], bursts[(line, 1000)]["model"]) == (100, 10.0), client
        assert float(waiting) == round(bursts[(line, 1000)]["makespan"], 2), client
        assert float(thousand) == round(bursts[(f"{line} L=0", 1000)]["makespan"], 2), client
    for reference in ("FastAPI proxy", "FastAPI + httpx proxy"):
        assert f"{round(configs[reference]['rps']):,}" in section, reference
    times = round(configs["receiver, httpx"]["cpu_us"] / configs["receiver"]["cpu_us"])
    assert times == 12 and "twelve times" in section
    per_request = {line: round(bursts[(line, 1000)]["loop_cpu"] / 1000 * 1e6) for line in ("async httpx", "async")}
    assert (f"spent {per_request['async httpx']:,} µs of CPU a request with httpx and "
            f"{per_request['async']:,} µs with aiohttp") in " ".join(section.split()), per_request


def test_the_floor_table_states_the_committed_floor_run():
    run = json.loads((DOCS / "performance/2026-12-06-floor/results.json").read_text())
    scale = next(b for b in run["bursts"] if b["label"] == "async L=0" and b["n"] == 1000)
    measured = {"the receiver, `async`, L = 0": (scale["makespan"], scale["delay"]),
                **{f["label"].replace("L=0", "L = 0"): (f["makespan"], f["delay"]) for f in run["floors"]}}
    text = (DOCS / "performance.md").read_text()
    section = text[text.index("### The floor under a burst of 1,000"):]
    rows = re.findall(r"^\| ([^|]+?) \| ([\d.]+) s \| ([\d.]+) s \|$", section[:section.index("\n## ")],
                      re.MULTILINE)
    assert [label for label, *_ in rows] == list(measured)
    for label, makespan, beyond in rows:
        total, delay = measured[label]
        assert (float(makespan), float(beyond)) == (round(total, 2), round(total - delay, 3)), label
    prose = " ".join(section[:section.index("\n## ")].split())
    cpu = {f["label"]: f["cpu"] for f in run["floors"]}
    assert (f"used {cpu['waits D, no HTTP library']:.2f} s of CPU for the whole burst, against "
            f"{cpu['waits D, no call']:.2f} s for aiohttp.web's") in prose
    assert measured["waits D, no HTTP library"][0] >= measured["waits D, no call"][0]  # "finished no sooner"
    gain = measured["the receiver, `async`, L = 0"][0] - measured["aiohttp.web proxy, L = 0"][0]
    assert f"does the same call in {gain:.2f} s less" in prose
    assert min(total for total, _ in measured.values()) > goals.SCALE_MAX and "no server met it" in prose


def test_the_performance_page_states_the_committed_work_runs_goals():
    run = Results.from_json(json.loads((DOCS / "performance/2026-12-06-work/results.json").read_text()))
    judged = goals.check(run)
    by_name = {g.name: g for g in judged}
    passed, failed, _ = goals.verdict(judged)
    text = (DOCS / "performance.md").read_text()
    paragraph = " ".join(text[text.index("The work goals (c of CPU a"):text.index("[Experiment 7]")].split())
    assert f"{passed} of {passed + failed} measured goals PASS" in paragraph
    bursts = [g.value for g in judged if g.group == "work" and "makespan" in g.name and g.value]
    assert f"Every burst with work is within {max(abs(v - 1) for v in bursts) * 100:.0f}%" in paragraph
    c0 = by_name["async: makespan, N = 1,000, predicted with c₀"]
    assert re.search(r"c₀ = (\d+) µs", c0.measured)[1] + " µs" in paragraph
    assert re.search(r"^([\d.]+ s) vs ([\d.]+ s)", c0.measured).expand(r"(\1 against \2)") in paragraph
    pooled = by_name["threaded, c = 20 ms, P = 2, T = 200: capacity"]
    assert f"reads {pooled.value:.3f}× of P'/c" in paragraph
    threaded, def_ = (by_name[f"{mode}, c = 20 ms: capacity"] for mode in ("threaded", "def"))
    assert f"threaded at c = 20 ms reads {threaded.value:.3f}× of the model in which threads share the GIL" \
        in paragraph and threaded.passed
    assert f"def at c = 20 ms, {def_.value:.3f}× of that model" in paragraph and not def_.passed
    assert failed == 2 and "Two fail" in paragraph
    floor = next(f for f in run.floors if f.module == goals.FLOOR)
    assert f"takes in the same run, {floor.makespan:.3f} s" in paragraph


def test_the_model_page_states_the_committed_gil_run():
    run = json.loads((DOCS / "performance/2026-12-06-gil/gil.json").read_text())
    assert (run["knobs"]["threads"], run["knobs"]["delay"], run["knobs"]["cpu_ms"]) == (40, 1.0, 20.0)
    text = (DOCS / "model.md").read_text()
    assert "40 threads that each wait 1 s, then compute 20 ms" in " ".join(text.split())
    rows = re.findall(r"^\| ([a-z0-9., _]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", text, re.MULTILINE)
    at_default = [r for r in run["ways"] if r["interval"] == 0.005]
    assert [way for way, *_ in rows] == [r["way"] for r in at_default]
    for (way, rate, modelled, ratio), measured in zip(rows, at_default):
        assert (rate, modelled, ratio) == (f"{measured['window_rate']:.1f}", f"{measured['model']:.1f}",
                                           f"{measured['ratio']:.3f}"), way
    # Where the time goes: each row the page shows is the run's, in milliseconds.
    parts = re.findall(r"^\| ([a-z_, ]+) \| (\d+) ms" + r" \| (\d+)" * 5 + r" \|$", text, re.MULTILINE)
    assert [(way, interval) for way, interval, *_ in parts] == [
        ("sleep", "5"), ("requests", "1"), ("requests", "5"), ("requests", "20"), ("requests, trust_env", "5"),
        ("requests, run_in_executor", "5"), ("requests, anyio to_thread", "5")]

    def at(way: str, interval: int) -> dict:
        (measured,) = [r for r in run["ways"] if r["way"] == way and round(r["interval"] * 1000) == interval]
        return measured

    said = " ".join(text.split())  # the bullets below the table quote it
    fast, default, slow = at("requests", 1), at("requests", 5), at("requests", 20)
    environment = at("requests, trust_env", 5)
    for phrase in (f"yet it takes {gil.ms(default['call_beyond_delay'])} ms beyond D",
                   f"Its call takes {gil.ms(environment['call_beyond_delay'])} ms beyond D against "
                   f"{gil.ms(default['call_beyond_delay'])} ms for the receiver's session",
                   f"runs whole ({gil.ms(slow['work'])} ms) and the call waits behind it "
                   f"({gil.ms(slow['call_beyond_delay'])} ms)",
                   f"at 1 ms the call waits {gil.ms(fast['call_beyond_delay'])} ms",
                   f"takes {gil.ms(fast['work'])} ms", f"in this run, {gil.ms(gil.beyond_delay(slow))} ms against "
                   f"{gil.ms(gil.beyond_delay(default))} ms at CPython's 5 ms",
                   f"takes its next request from it ({gil.ms(at('requests, run_in_executor', 5)['handed_over'])} ms)",
                   f"wait for the GIL too ({gil.ms(at('requests, anyio to_thread', 5)['handed_over'])} ms)"):
        assert phrase in said, phrase
    # "a requests call is about a millisecond of Python": its CPU a request beyond a sleeping thread's
    assert 0.0005 < default["cpu_per_request"] - at("sleep", 5)["cpu_per_request"] < 0.002
    assert environment["call_beyond_delay"] > default["call_beyond_delay"]  # "one more wait"
    assert gil.beyond_delay(slow) < gil.beyond_delay(default)  # "the longer turn gave the shortest sum"
    assert gil.beyond_delay(slow) < gil.beyond_delay(fast)
    for way, interval, *shown in parts:
        measured = at(way, int(interval))
        assert shown == [gil.ms(measured["handed_over"]), gil.ms(measured["call_beyond_delay"]),
                         gil.ms(measured["work"]), gil.ms(gil.beyond_delay(measured)),
                         gil.ms(measured["model_beyond_delay"])], (way, interval)
