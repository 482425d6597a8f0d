"""python -m bench [--quick] [--delay D] [--out DIR] [--receivers URL,...]: measure every mode.

Sweeps the modes over burst sizes (makespan vs N, beside the model; the burst of 1,000 also
against servers that do less, its floor on this machine) and over offered rates
(open loop, fractions of each mode's capacity, beside the model replaying the same
schedule), then both again with c of CPU work per request (RECEIVER_CPU_MS); measures the
receiver's pass-through cost against two plain proxies and the
sender against Locust and a bare aiohttp loop, checks the goals, and writes results.json,
results.md and PNG charts to --out. Services run on loopback, the server under test on one
core and the load generators on another; with --receivers the sweeps target those running
receivers instead (a compose stack: each reports its mode and caps in /info).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench import bursts, floors, goals, loadgen, machine, passthrough, rates, report, work, workers
from bench.charts import write_charts
from bench.console import console_summary
from bench.results import CapsRow, Knobs, Results, Timing
from bench.run import BenchError, Services, services
from lab import arrivals, model
from tools.processes import ROOT, get


@dataclass(frozen=True)
class Profile:
    name: str
    delay: float
    sizes: tuple[int, ...]
    max_makespan: float
    fractions: tuple[float, ...]
    rate_duration: float
    passthrough: tuple[float, int]  # seconds per round, rounds
    loadgen: tuple[float, int]
    workers_repeats: int  # bursts of each N per configuration in the workers experiment


FULL = Profile("full", 1.0, (1, 2, 4, 10, 40, 100, 400, 1000), 120.0, (0.25, 0.5, 0.8, 1.0, 1.25, 2.0), 20.0,
               (4.0, 8), (3.0, 6), 5)
# About three minutes: a smoke run that writes every file and reports every goal. Its D is a
# quarter of the goals' D, its runs short: its verdicts are not the benchmark's.
QUICK = Profile("quick", 0.25, (1, 2, 10, 100), 30.0, (0.5, 0.8, 2.0), 5.0, (3.0, 1), (3.0, 1), 2)
CAPS = model.Caps(pool_limit=100, threads=40)  # the receiver's defaults
ARRIVALS: arrivals.Arrivals = "poisson"  # queueing shows below capacity too; M/D/1 is its reference
SEED = 1


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the ~3 minute smoke profile (make bench-quick)")
    parser.add_argument("--delay", type=float,
                        help="upstream delay D in seconds (full: 1, quick: 0.25; the seed's: 10)")
    parser.add_argument("--max-makespan", type=float, help="skip bursts the model says take longer (full: 120 s)")
    parser.add_argument("--out", type=Path, help="where results go (default: bench-results/<profile>)")
    parser.add_argument("--receivers", help="comma-separated URLs of running receivers to sweep instead of local ones")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["bursts", "rates", "workers", "work", "passthrough", "loadgen"],
                        help="leave a part out (its goals are reported as not measured)")
    return parser.parse_args()


def series(profile: Profile, modes: tuple[model.Mode, ...], local: bool = True) -> list[bursts.Series]:
    """The burst sweep's lines; the httpx ones only against local receivers (given ones run what they run)."""
    found = [bursts.Series(mode, mode, CAPS, profile.sizes) for mode in modes]
    if "async" in modes:  # the async-scale goal: N = 1,000 with no connector limit; and both again with httpx
        # and N = 100 before it, as warm, for c₀: the receiver's own cost a request with its connections open
        found.append(bursts.Series("async L=0", "async", replace(CAPS, pool_limit=0), (goals.OVERHEAD_N, goals.SCALE_N),
                                   warm=True))
    if "async" in modes and local:
        httpx = (("RECEIVER_ASYNC_CLIENT", "httpx"),)
        found.append(bursts.Series("async httpx", "async", CAPS, profile.sizes, settings=httpx))
        found.append(bursts.Series("async httpx L=0", "async", replace(CAPS, pool_limit=0),
                                   (goals.OVERHEAD_N, goals.SCALE_N), warm=True, settings=httpx))
    return found


class Receivers:
    """A receiver per mode and caps: local processes started on demand (one at a time), or given URLs."""

    def __init__(self, running: Services, upstream: str | None, urls: dict[tuple[model.Mode, model.Caps], str]):
        self.running = running
        self.upstream = upstream
        self.urls = urls
        self.current: tuple[tuple[model.Mode, model.Caps, tuple[tuple[str, str], ...]], Any] | None = None

    def url(self, mode: model.Mode, caps: model.Caps, settings: tuple[tuple[str, str], ...] = ()) -> str:
        """A receiver in this mode with these caps (work, if caps.cpu; its processes unpinned, with the cores),
        and these more settings (env pairs: its clients, say)."""
        if not settings and (mode, caps) in self.urls:
            return self.urls[(mode, caps)]
        key = (mode, caps, settings)
        if self.upstream is None:
            raise BenchError(f"no receiver given runs {mode} with pool_limit={caps.pool_limit} "
                             f"threads={caps.threads}; pass one in --receivers or run without it")
        if self.current and self.current[0] == key:
            return self.current[1].url
        self.release()
        receiver = self.running.start("receiver", None if caps.processes else "server", RECEIVER_MODE=mode,
                                      UPSTREAM_URL=self.upstream, RECEIVER_POOL_LIMIT=str(caps.pool_limit),
                                      RECEIVER_THREADS=str(caps.threads), RECEIVER_CPU_MS=f"{caps.cpu * 1000:g}",
                                      RECEIVER_CPU_PROCESSES=str(caps.processes), **dict(settings))
        self.current = (key, receiver)
        return receiver.url

    def pid(self) -> int:
        """The current local receiver's pid."""
        if not self.current:
            raise BenchError("no local receiver is running")
        return self.current[1].process.pid

    def release(self) -> None:
        """Stop the current local receiver: the server core to something else."""
        if self.current:
            self.running.stop(self.current[1])
            self.current = None

    def loop_cpu(self) -> float | None:
        """CPU seconds the current local receiver's event-loop thread (its main thread) has used; None: not local."""
        if not self.current:
            return None
        pid = self.pid()
        try:  # the first field is the thread's time on a CPU, in nanoseconds
            return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return None


def given(urls: str) -> dict[tuple[model.Mode, model.Caps], str]:
    found = {}
    for url in (u.strip().rstrip("/") for u in urls.split(",") if u.strip()):
        try:
            status, body = get(f"{url}/info", timeout=10)
        except OSError as exc:
            raise BenchError(f"{url}/info cannot be reached ({exc}): is the stack up?") from None
        if status != 200:
            raise BenchError(f"{url}/info answered {status}: is it the lab's receiver?")
        info = json.loads(body)
        caps = model.Caps.from_info(info)
        # cores matter only to work in processes: a receiver without is the one asked for on any cores
        found[(info["mode"], caps if caps.processes else replace(caps, cores=CAPS.cores))] = url
    return found


def estimate(profile: Profile, plan: list, points: list, skip: list[str], local: bool = True) -> float:
    """Seconds of measuring, by the model; local: the services are local processes (no --receivers)."""
    total = 0.0
    if "bursts" not in skip:
        total += bursts.seconds(plan) + (floors.seconds(profile.delay) if local else 0.0)
    if "rates" not in skip:
        total += len(points) * profile.rate_duration
    if "workers" not in skip:
        total += workers.seconds(profile.delay, profile.workers_repeats)
    if "work" not in skip:
        total += work.seconds(work.cases(model.MODES, CAPS), profile.delay, profile.rate_duration)
    if "passthrough" not in skip:
        seconds, rounds = profile.passthrough
        total += (len(passthrough.CONFIGURATIONS) + len(passthrough.PAIRS)) * seconds * rounds
    if "loadgen" not in skip:
        total += len(loadgen.TOOLS) * profile.loadgen[0] * profile.loadgen[1]
    return total


def preflight(skip: list[str]) -> None:
    """Stop before anything runs if a tool is missing, saying how to get it."""
    if "passthrough" not in skip and shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: apt-get install wrk (or --skip passthrough)")
    if "loadgen" not in skip:
        try:
            import locust  # noqa: F401
        except ImportError:
            raise BenchError("locust is not installed: make bench installs requirements-bench.txt "
                             "(or --skip loadgen)") from None


def knobs(profile: Profile, modes: tuple[model.Mode, ...], urls: dict[tuple[model.Mode, model.Caps], str]) -> Knobs:
    return Knobs(delay=profile.delay, modes=list(modes), burst_sizes=list(profile.sizes),
                 max_makespan=profile.max_makespan, rate_fractions=list(profile.fractions),
                 rate_duration=profile.rate_duration, arrivals=ARRIVALS, seed=SEED,
                 backlog_seconds=rates.BACKLOG_SECONDS,
                 caps=CapsRow(pool_limit=CAPS.pool_limit, threads=CAPS.threads),
                 passthrough=Timing(seconds=profile.passthrough[0], rounds=profile.passthrough[1]),
                 loadgen=Timing(seconds=profile.loadgen[0], rounds=profile.loadgen[1]),
                 workers_repeats=profile.workers_repeats, targets=list(urls.values()) if urls else "local")


def run(args: argparse.Namespace, console: Console) -> Results:
    profile = QUICK if args.quick else FULL
    profile = replace(profile, delay=args.delay if args.delay is not None else profile.delay,
                      max_makespan=args.max_makespan if args.max_makespan is not None else profile.max_makespan)
    preflight(args.skip)
    cpus = machine.cores()
    urls = given(args.receivers) if args.receivers else {}
    modes = tuple(sorted({mode for mode, _ in urls}, key=model.MODES.index)) if urls else model.MODES
    plan = bursts.plan(series(profile, modes, local=not urls), profile.delay, profile.max_makespan)
    points = rates.points(modes, profile.fractions, profile.delay, CAPS)
    started = time.monotonic()
    results = Results(version=1, profile=profile.name,
                      started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                      machine=machine.describe(), knobs=knobs(profile, modes, urls))
    pinning = f"server on core {cpus['server'][0]}, load generators and upstream on core {cpus['load'][0]}" if cpus \
        else "not pinned (fewer than two cores)"
    console.print(f"[bold]bench[/] profile={profile.name} D={profile.delay:g}s, {pinning}; "
                  f"about {estimate(profile, plan, points, args.skip, not urls) / 60:.0f} min of measuring")
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp, services(Path(tmp), cpus) as running, Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:
        bar = progress.add_task("starting", total=estimate(profile, plan, points, args.skip, not urls))

        def advance(description: str, seconds: float) -> None:
            progress.update(bar, description=description, advance=seconds)

        parts = measure(args.skip, profile, modes, points, running, urls, Path(tmp), advance)
    results = replace(results, **parts, seconds=round(time.monotonic() - started, 1))
    return replace(results, goals=goals.check(results))


def measure(skip: list[str], profile: Profile, modes: tuple[model.Mode, ...], points: list[rates.Point],
            running: Services, urls: dict[tuple[model.Mode, model.Caps], str], scratch: Path,
            advance: Callable[[str, float], None]) -> dict[str, Any]:
    """Every part of the run not skipped, by its field in Results: against the given receivers, or local ones."""
    parts: dict[str, Any] = {}
    load = running.cpus["load"] if running.cpus else None
    upstream_service = None if urls else running.start("upstream", "load")
    upstream = None if upstream_service is None else upstream_service.url
    receivers = Receivers(running, upstream, urls)
    if "bursts" not in skip:
        parts["bursts"] = bursts.sweep(series(profile, modes, local=not urls), profile.delay, profile.max_makespan,
                                       lambda s: receivers.url(s.mode, s.caps, s.settings), scratch, load, advance,
                                       receivers.loop_cpu)
        if "async" in modes and upstream_service is not None:  # local only: the floors run on the server core
            receivers.release()
            parts["floors"] = floors.measure(running, upstream_service.url, goals.SCALE_N, profile.delay, scratch,
                                             load, advance)
    if "rates" not in skip:
        parts["rates"] = rates.sweep(points, profile.rate_duration, ARRIVALS, SEED,
                                     lambda mode: receivers.url(mode, CAPS), scratch, load, advance)
    if "work" not in skip and upstream_service is not None:  # local receivers only: given ones do no work
        parts["work"] = work.sweep(work.cases(modes, CAPS), profile.delay, profile.rate_duration, ARRIVALS, SEED,
                                   lambda case: receivers.url(case.mode, case.caps), scratch, load, advance,
                                   lambda: work.processes(receivers.pid(), upstream_service.process.pid))
    running.stop_all()
    if "workers" not in skip and upstream is not None:  # local receivers only: it reads their /proc
        upstream = running.start("upstream", "load").url
        parts["workers"] = workers.sweep(running, upstream, profile.delay, profile.workers_repeats, scratch, load,
                                         advance)
        running.stop_all()
    if "passthrough" not in skip:
        seconds, rounds = profile.passthrough
        try:
            parts["passthrough"] = passthrough.measure(seconds, rounds, lambda text: advance(text, seconds))
        except RuntimeError as exc:
            raise BenchError(f"pass-through: {exc}") from None
    if "loadgen" not in skip:
        seconds, rounds = profile.loadgen
        parts["loadgen"] = loadgen.measure(running, seconds, rounds, scratch, advance)
    return parts


def write(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results.to_json(), indent=1) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    return [out / "results.json", out / "results.md", *write_charts(results, out)]


def main() -> int:
    args = parse()
    console = Console()
    out = args.out or ROOT / "bench-results" / ("quick" if args.quick else "full")
    try:
        results = run(args, console)
    except BenchError as exc:
        console.print(f"[bold red]bench stopped:[/] {exc}\nNothing was written: a partial table would read as whole.")
        return 2
    written = write(results, out)
    for renderable in console_summary(results):
        console.print(renderable)
    passed, failed, unmeasured = goals.verdict(results.goals)
    console.print(f"goals: {passed} PASS, {failed} FAIL, {unmeasured} not measured; "
                  f"wrote {', '.join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in written)}")
    if results.profile == "quick":
        return 0  # a smoke run: its verdicts are reported, not enforced
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
