"""The README's tour, step by step in the compose lab, read off the dashboard panel by panel.

Each step runs the README's command, waits for two bursts in the new mode, and evaluates every
panel's queries as Grafana would (tools.snapshot: the dashboard's own expressions, with
$__rate_interval, $__interval and $__range put in as Grafana 11 does, stats as instant queries,
time series over a range). Each panel's values are checked against the model with the
tolerances below: what the README promises for that step. The lab runs as .env sets it
(N = 5 requests every 10 s, D = 1 s); only the host ports differ.

Slow (about 5 minutes): marked `tour`, run by `make tour` and by CI beside `make test`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from lab import model
from tests.compose import COMPARE, SERVICES, Lab, dotenv, host_ports, require_docker
from tests.conftest import eventually
from tools import snapshot
from tools.processes import ROOT

pytestmark = pytest.mark.tour

N, D, INTERVAL = 5, 1.0, 10.0  # .env's SENDER_CONCURRENCY, UPSTREAM_DELAY, SENDER_INTERVAL
# The culprit a blocking call names, by RECEIVER_SYNC_CLIENT: the lab's function → the library's call.
CULPRITS = {"requests": "receiver.clients.call_with_requests → requests.sessions.Session.get",
            "httpx": "receiver.clients.call_with_httpx_sync → httpx._client.Client.get"}
# The client label each library's calls carry (receiver_upstream_call_duration_seconds).
SYNC_LABEL, ASYNC_LABEL = {"requests": "requests", "httpx": "httpx.Client"}, \
    {"aiohttp": "aiohttp", "httpx": "httpx.AsyncClient"}
TRUE = 0.05  # a latency read off a histogram: within 5% of the truth (lab.metrics.BUCKETS)
MAKESPAN = 0.10  # a burst's makespan: within 10% + 0.1 s of the model (the sender's own measure)
BLOCKED = 0.95 * D  # a loop held by a requests call of D reads at least this
SCRAPE, RATE_WINDOW = 2.0, 8.0  # prometheus.yml's scrape interval; $__rate_interval over the dashboard's 15 min


@dataclass(frozen=True)
class Step:
    """One step of the README's tour: its command's settings and what runs after it."""

    name: str
    env: dict[str, str]
    modes: tuple[model.Mode, ...]
    caps: model.Caps = field(default_factory=lambda: model.Caps(pool_limit=100, threads=40))
    profile: str = "single"

    @property
    def sync_client(self) -> str:
        return self.env.get("RECEIVER_SYNC_CLIENT", "requests")

    @property
    def async_client(self) -> str:
        return self.env.get("RECEIVER_ASYNC_CLIENT", "aiohttp")


STEPS = [
    Step("sync", {"RECEIVER_MODE": "sync"}, ("sync",)),
    Step("async", {"RECEIVER_MODE": "async"}, ("async",)),
    Step("mixed", {"RECEIVER_MODE": "mixed"}, ("mixed",)),
    Step("threaded", {"RECEIVER_MODE": "threaded"}, ("threaded",)),
    Step("threaded, T = 2", {"RECEIVER_MODE": "threaded", "RECEIVER_THREADS": "2"}, ("threaded",),
         model.Caps(pool_limit=100, threads=2)),
    Step("def", {"RECEIVER_MODE": "def"}, ("def",)),
    Step("mixed with httpx", {"RECEIVER_MODE": "mixed", "RECEIVER_SYNC_CLIENT": "httpx",
                              "RECEIVER_ASYNC_CLIENT": "httpx"}, ("mixed",)),
    Step("compare", {}, model.MODES, profile="compare"),
]


Values = dict[str, list[float]]  # a panel's series by display name: their finite values over the step
BEGAN: list[float] = []  # when the lab fixture's tour began (after the build)


@dataclass(frozen=True)
class Reading:
    """What one step's dashboard showed: each panel's series, and the text it shows without any."""

    panels: dict[str, Values]
    fallback: dict[str, str | None]

    def series(self, title: str) -> Values:
        return self.panels[title]

    def one(self, title: str, name: str) -> list[float]:
        found = self.panels[title].get(name)
        assert found, f"{title}: no series {name!r} (it shows {sorted(self.panels[title])})"
        return found


def peak(values: list[float]) -> float:
    return max(values)


def near(measured: float, expected: float, relative: float, absolute: float = 0.0) -> bool:
    return abs(measured - expected) <= relative * expected + absolute


def slowest(r: Reading, mode: model.Mode) -> float:
    """The slowest answer of the step's bursts to mode, from its intended send time: the sender's
    own makespan, timed exactly (no histogram), and held near the model by the makespan panels."""
    return max(D, peak(r.one("Burst makespan: measured vs model", f"{mode} measured")))


def true_latency(value: float, r: Reading, step: Step, mode: model.Mode) -> bool:
    """A latency read off a histogram, of a request that takes D: at least D and, to within the
    buckets' resolution, no more than what happened. Where the model has every answer at D, what
    happened is the slowest answer the sender timed, and a clock inside the receiver times a
    part of it; elsewhere (answers queue behind one another) one request's own time is D."""
    spread = len(set(answers(mode, step.caps))) > 1
    return D * (1 - TRUE) <= value <= (D if spread else slowest(r, mode)) * (1 + TRUE)


# ---- What each panel must show, per running mode --------------------------------------------------------
# check(reading, step, mode) -> problems (empty: the panel reads what happened). Every panel of the
# dashboard has one (a test below checks it), so a new panel cannot go unchecked.

Check = Callable[[Reading, Step, model.Mode], list[str]]


def receiver_mode(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    names = set(r.series("Receiver mode"))
    expected = {f"{m} · uvicorn ×1" for m in step.modes}
    return [] if names == expected else [f"Receiver mode shows {sorted(names)}, not {sorted(expected)}"]


def last_burst(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Last burst: measured vs model"
    expected = model.makespan(mode, N, D, step.caps)
    measured, predicted = r.one(title, f"{mode} measured")[-1], r.one(title, f"{mode} model")[-1]
    problems = [] if near(measured, expected, MAKESPAN, 0.1) else [f"{title}: {mode} measured {measured:.3f} s"]
    return problems + ([] if near(predicted, expected, 0, 0.001) else [f"{title}: {mode} model {predicted:.3f} s"])


def upstream_at_once(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = next(t for t in r.panels if t.startswith("Upstream calls at once"))
    got, expected = r.one(title, f"from {mode}")[-1], model.upstream_concurrency(mode, N, step.caps)
    others = set(r.series(title)) - {f"from {m}" for m in step.modes}
    return ([] if got == expected else [f"{title}: from {mode} {got:g}, not {expected}"]) + \
        ([f"{title}: lists modes not running: {sorted(others)}"] if others else [])


def blocked_stat(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = next(t for t in r.panels if t.startswith("Event loop blocked (longest"))
    return blocked_reads(title, r.one(title, mode)[-1], mode)


def blocked_reads(title: str, value: float, mode: model.Mode) -> list[str]:
    if model.blocked_seconds(mode, N, D):
        return [] if value >= BLOCKED else [f"{title}: {mode} reads {value:.3f} s, not ≥ {BLOCKED:g} s"]
    return [] if value < 0.1 else [f"{title}: {mode} reads {value:.3f} s though nothing blocks it"]


def top_culprit(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Top culprit (last minute)"
    names = {name for name in r.series(title) if name.startswith(f"{mode}: ")}
    expected = {f"{mode}: {CULPRITS[step.sync_client] if model.blocked_seconds(mode, N, D) else 'nothing blocked'}"}
    return [] if names == expected else [f"{title}: {mode} names {sorted(names)}, not {sorted(expected)}"]


def makespan_graph(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Burst makespan: measured vs model"
    expected = model.makespan(mode, N, D, step.caps)
    measured = peak(r.one(title, f"{mode} measured"))
    return [] if near(measured, expected, MAKESPAN, 0.1) else [f"{title}: {mode} measured {measured:.3f} s"]


def requests_per_second(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Requests per second"
    names = (f"sender → {mode}", f"receiver {mode}", f"upstream from {mode}")
    return [f"{title}: {name} never above 0" for name in names if peak(r.one(title, name)) <= 0]


def in_flight(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "In flight (peak over 5 s)"
    upstream, receiver = peak(r.one(title, f"upstream from {mode}")), peak(r.one(title, f"receiver {mode}"))
    expected = model.upstream_concurrency(mode, N, step.caps)
    return ([] if upstream == expected else [f"{title}: upstream from {mode} {upstream:g}, not {expected}"]) + \
        ([] if receiver == (1 if mode == "sync" else N) else [f"{title}: receiver {mode} {receiver:g}"])


def blocked_graph(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Event loop blocked (peak over 5 s)"
    others = [f"{title}: {job} reads {peak(r.one(title, job)):.3f} s" for job in ("sender", "upstream")
              if peak(r.one(title, job)) >= 0.1]
    return blocked_reads(title, peak(r.one(title, f"receiver {mode}")), mode) + others


def what_blocked(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "What blocked the loop"
    names = {name for name in r.series(title) if name.startswith(f"{mode}: ")}
    if model.blocked_seconds(mode, N, D):
        share = peak(r.one(title, f"{mode}: {CULPRITS[step.sync_client]} · wait"))  # a call: the loop thread waited
        return [] if 0 < share <= 1 else [f"{title}: {mode}'s culprit share {share:.3f}"]
    none = r.one(title, f"{mode}: none")
    return [] if names == {f"{mode}: none"} and peak(none) == 0 else [f"{title}: {mode} shows {sorted(names)}"]


def offered(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Offered vs achieved rate"
    offer, achieved = r.one(title, f"{mode} offered"), peak(r.one(title, f"{mode} achieved"))
    return ([] if set(offer) == {N / INTERVAL} else [f"{title}: {mode} offered {sorted(set(offer))}"]) + \
        ([] if 0 < achieved <= 1.2 * N / INTERVAL else [f"{title}: {mode} achieved {achieved:.3f}"])


def answers(mode: model.Mode, caps: model.Caps) -> list[float]:
    return model.completion_times(mode, N, D, caps)


def sender_latency(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Latency from intended send time"
    times = answers(mode, step.caps)
    p50, p99 = r.one(title, f"p50 {mode}"), r.one(title, f"p99 {mode}")
    if max(times) == min(times):  # every answer at D: each window's quantiles too
        return [f"{title}: p{q} {mode} reads {v:.3f} s, the slowest answer {slowest(r, mode):.3f} s"
                for q, vs in (("50", p50), ("99", p99)) for v in vs if not true_latency(v, r, step, mode)]
    # bursts whose answers spread out: the slowest answer is the peak of p99
    return [] if near(peak(p99), max(times), TRUE, 0.05) else [f"{title}: p99 {mode} peaks at {peak(p99):.3f} s"]


def dropped(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Dropped and late"
    return [f"{title}: {name} reads {peak(r.one(title, name)):g}/s" for name in (f"{mode} dropped", f"{mode} late")
            if peak(r.one(title, name)) != 0]


def inside_receiver(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Latency inside the receiver"
    p50, p99 = r.one(title, f"p50 {mode}"), r.one(title, f"p99 {mode}")
    if mode == "mixed" or (mode == "threaded" and step.caps.threads < N):
        return []  # the wait for the loop (mixed) or for a thread (T < N) is inside: no single D to read
    return [f"{title}: {name} {mode} reads {v:.3f} s, the slowest answer {slowest(r, mode):.3f} s"
            for name, vs in (("p50", p50), ("p99", p99)) for v in vs if not true_latency(v, r, step, mode)]


def clocks(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Upstream calls: the receiver's clock vs upstream's"
    problems = [f"{title}: upstream's clock for {mode} reads {v:.3f} s"
                for v in r.one(title, f"p50 {mode}: upstream's clock") if not near(v, D, TRUE)]
    sync, loop_friendly = SYNC_LABEL[step.sync_client], ASYNC_LABEL[step.async_client]
    clients = {"sync": [sync], "async": [loop_friendly], "mixed": [sync, loop_friendly],
               "threaded": [sync], "def": [sync]}[mode]
    for client in clients:
        own = r.one(title, f"p50 {mode} {client}: receiver's clock")
        if mode == "mixed" and client == loop_friendly:  # read only when the loop runs again: (N+1)/2·D on average
            if not peak(own) >= 2 * D:
                problems.append(f"{title}: mixed's {client} clock peaks at {peak(own):.3f} s, not ≥ {2 * D:g} s")
        elif mode == "threaded" and step.caps.threads < N:
            continue  # a call's time includes no wait for a thread, yet its answer may wait: not checked
        else:
            problems += [f"{title}: {mode} {client} clock reads {v:.3f} s" for v in own
                         if not true_latency(v, r, step, mode)]
    return problems


POOL = {"sync": None, "async": "connections", "mixed": "connections", "threaded": "threads", "def": "anyio"}


def pools(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Pools: busy and waiting (peak over 5 s)"
    connections = step.async_client  # the async client's connections: aiohttp's, or httpx's calls in flight
    used = connections if POOL[mode] == "connections" else POOL[mode]
    caps = {connections: step.caps.pool_limit, "threads": step.caps.threads, "anyio": step.caps.tokens}
    cap = caps.get(used or "", 0)
    problems = []
    for pool in (connections, "threads", "anyio"):
        at_once = min(N, cap) if pool == used else 0
        expected = {"busy": {at_once}, "waiting": {N - at_once if pool == used else 0}}
        if pool == "aiohttp" and pool != used:
            # The receiver's /info asks upstream's /info through its aiohttp session, once per burst
            # (the sender asks /info before each): a probe tick may see that one connection busy.
            expected["busy"] = {0, 1}
        for kind, values in expected.items():
            got = peak(r.one(title, f"{mode} {pool} {kind}"))
            if got not in values:
                problems.append(f"{title}: {mode} {pool} {kind} peaks at {got:g}, not {sorted(values)}")
    return problems


def loop_lag(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Event loop lag p99"
    lag = peak(r.one(title, f"receiver {mode}"))
    if model.blocked_seconds(mode, N, D):
        return [] if lag >= 0.9 * D else [f"{title}: {mode} peaks at {lag:.3f} s"]
    return [] if lag < 0.1 else [f"{title}: {mode} peaks at {lag:.3f} s"]


def errors(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Errors: share of requests that failed"
    names = (f"sender → {mode}", f"receiver {mode} 5xx", f"upstream from {mode} 5xx")
    return [f"{title}: {name} reads {peak(r.one(title, name)):g}" for name in names if peak(r.one(title, name)) != 0]


def scrape_health(r: Reading, step: Step, mode: model.Mode) -> list[str]:
    title = "Scrape health"
    jobs = {name.split()[0] for name in r.series(title)}
    down = [name for name, values in r.series(title).items() if min(values) != 1]
    receivers = [name for name in r.series(title) if name.startswith("receiver ")]
    return ([] if jobs == {"sender", "receiver", "upstream"} else [f"{title}: jobs {sorted(jobs)}"]) + \
        [f"{title}: {name} was down" for name in down] + \
        ([] if len(receivers) == len(step.modes) else [f"{title}: {len(receivers)} receivers scraped"])


CHECKS: dict[str, Check] = {
    "Receiver mode": receiver_mode,
    "Last burst: measured vs model": last_burst,
    "Upstream calls at once": upstream_at_once,
    "Event loop blocked (longest": blocked_stat,
    "Top culprit (last minute)": top_culprit,
    "Burst makespan: measured vs model": makespan_graph,
    "Requests per second": requests_per_second,
    "In flight (peak over 5 s)": in_flight,
    "Event loop blocked (peak over 5 s)": blocked_graph,
    "What blocked the loop": what_blocked,
    "Offered vs achieved rate": offered,
    "Latency from intended send time": sender_latency,
    "Dropped and late": dropped,
    "Latency inside the receiver": inside_receiver,
    "Upstream calls: the receiver's clock vs upstream's": clocks,
    "Pools: busy and waiting (peak over 5 s)": pools,
    "Event loop lag p99": loop_lag,
    "Errors: share of requests that failed": errors,
    "Scrape health": scrape_health,
}


def board() -> dict:
    return json.loads(snapshot.DASHBOARD.read_text())


def queried_panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if snapshot.targets(p)]


def check_for(title: str) -> Check:
    found = [check for start, check in CHECKS.items() if title.startswith(start)]
    assert len(found) == 1, f"the tour has {len(found)} checks for the panel {title!r}"
    return found[0]


def test_every_panel_with_queries_has_a_check_in_the_tour():
    for panel in queried_panels(board()):
        check_for(panel["title"])


def test_the_tour_reads_with_the_intervals_of_the_dashboards_15_minutes():
    assert snapshot.lab_intervals() == (SCRAPE, SCRAPE)
    for seconds in (15 * 60, 20, 60):  # the dashboard's range, and the short ranges each step reads
        assert snapshot.variables(seconds, SCRAPE)["__rate_interval"] == f"{RATE_WINDOW:g}s"


# ---- Driving the lab ------------------------------------------------------------------------------------


def read(lab: Lab, start: float, end: float) -> Reading:
    """Every panel over [start, end], as Grafana draws it (stats: at end)."""
    window = snapshot.Window(start=start, end=end, scrape_interval=SCRAPE, min_interval=SCRAPE)
    panels, fallback = {}, {}
    for panel in queried_panels(board()):
        data = snapshot.fetch(panel, snapshot.Prometheus(lab.prometheus), window)
        assert not data.errors, f"{panel['title']}: {data.errors}"
        values: Values = {}
        for series in data.series:
            values.setdefault(series.name, []).extend(v for _, v in series.finite())
        panels[panel["title"]] = {name: vs for name, vs in values.items() if vs}
        fallback[panel["title"]] = data.no_value
    return Reading(panels, fallback)


def bursts_done(lab: Lab, modes: tuple[str, ...]) -> float:
    """The fewest bursts a sender has finished (reached or not) to any of these modes."""
    found = {s.labels["mode"]: s.points[-1][1] for s in snapshot.Prometheus(lab.prometheus).instant(
        "sum by (mode) (sender_bursts_total)", time.time())}
    return min(found.get(mode, 0.0) for mode in modes)


def after_bursts(lab: Lab, modes: tuple[str, ...], count: int, since: float) -> float:
    """Wait until `count` more bursts to every mode are done (counted from `since`); the time."""
    eventually(lambda: bursts_done(lab, modes) >= since + count, 3 * INTERVAL * count + 30,
               f"{count} more burst(s) to {modes} on the dashboard")
    return time.time()


def scraped_after(lab: Lab, moment: float) -> float:
    """Wait until Prometheus has scraped every target twice since `moment`; the time of the last scrape."""
    def newest() -> float | None:
        # per job, its newest scrape: a Prometheus restarted by `down` still holds its old targets' last ones
        found = snapshot.Prometheus(lab.prometheus).instant("min(max by (job) (timestamp(up)))", time.time())
        oldest = found[0].points[-1][1] if found else 0.0
        return oldest if oldest > moment + 2 * SCRAPE else None

    return eventually(newest, 10 * SCRAPE, "two scrapes of every target after the burst")


def run_step(lab: Lab, step: Step) -> Reading:
    if step.profile == "compare":  # README: docker compose down && docker compose --profile compare up -d --wait
        lab.compose("down", timeout=300)
        lab.compose("--profile", "compare", "up", "-d", "--wait", "upstream", "prometheus", *COMPARE, timeout=300)
    else:  # README: RECEIVER_MODE=<mode> docker compose up -d (the tour waits for it)
        # check= named (its default): the step's variables can then only be compose's **env
        lab.compose("up", "-d", "--wait", *SERVICES, timeout=300, check=True, **step.env)
    done = bursts_done(lab, step.modes)
    first = after_bursts(lab, step.modes, 1, done)  # the first burst may have met the receiver restarting
    end = scraped_after(lab, after_bursts(lab, step.modes, 1, done + 1))
    # The range: from one rate window after the first burst (the window sees no earlier receiver) to
    # when the second burst is over and scraped: the dashboard as a user reads it after a burst.
    return read(lab, first + RATE_WINDOW, end)


@pytest.fixture(scope="module")
def lab():
    require_docker()
    # .env's knobs as they are committed (a knob set in this shell is not the tour's), but the ports
    # and the base images (CI sets stand-ins for machines that cannot pull).
    knobs = {key: value for key, value in dotenv().items() if not key.endswith("_IMAGE")}
    env = {**knobs, **host_ports()}
    lab = Lab(f"labtour{os.getpid()}", env)
    try:
        lab.compose("build", timeout=900)
        BEGAN.append(time.time())  # the tour's first step starts now: its picture's range
        yield lab
    finally:
        lab.compose("--profile", "compare", "down", "-v", "--remove-orphans", timeout=300, check=False)


@pytest.mark.parametrize("step", STEPS, ids=[step.name for step in STEPS])
def test_the_tour_reads_true_on_every_panel(lab, step):
    reading = read_step(lab, step)
    problems = [problem for mode in step.modes for panel in reading.panels
                for problem in check_for(panel)(reading, step, mode)]
    assert not problems, "\n".join(problems)


def read_step(lab: Lab, step: Step) -> Reading:
    reading = run_step(lab, step)
    out = ROOT / "tour-results.json"  # every panel's values, for the record (not committed)
    recorded = json.loads(out.read_text()) if out.exists() else {}
    recorded[step.name] = reading.panels
    out.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n")
    return reading


def test_no_panel_that_must_have_data_is_empty_after_the_tour(lab):
    # the tour's picture, every step in it: every panel that has no fallback (noValue) drew data.
    # Not committed; docs/tour.png is a copy of one (docs/development.md).
    end, out = time.time(), ROOT / "tour-dashboard.png"
    minutes = (end - BEGAN[-1]) / 60 + 0.25
    drawn = snapshot.main(["--prometheus", lab.prometheus, "--minutes", f"{minutes:.2f}", "--end", f"{end:.0f}",
                           "--out", str(out), "--require-data"])
    assert drawn == 0 and out.stat().st_size > 50_000
