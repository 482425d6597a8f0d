"""Sender capacity: the sender's top rate against a trivial endpoint, beside Locust and a bare loop.

The endpoint is bench/references/trivial.py on the server core; every load generator runs alone
on the load core with the same 64 connections, in rounds (rotated order), median per tool:
- sender: open loop at an offered rate far above what it can do, SENDER_MAX_IN_FLIGHT=64,
  so it runs flat out; its top rate is the answers per second it gets back;
- Locust FastHttpUser, headless, 64 users with no wait (bench/locustfile.py);
- a bare aiohttp loop: 64 coroutines `GET` in a loop on one session (bench/bare_loop.py), on
  uvloop like the sender (the goal's reference), and on asyncio's own loop for comparison.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.results import Loadgen, Tool
from bench.run import BenchError, Services, sender
from tools.processes import ROOT, pinned_to

CONNECTIONS = 64
PATH = "/tasks/task1"  # what the sender asks for in open loop is the same route
TOOLS = ("sender", "Locust FastHttpUser", "bare aiohttp loop", "bare aiohttp loop, asyncio's loop")


def run_sender(url: str, seconds: float, cpus: list[int] | None, out: Path) -> float:
    result = sender([url], out, cpus, timeout=seconds + 60, SENDER_RATE="100000", SENDER_DURATION=f"{seconds:g}",
                    SENDER_MAX_IN_FLIGHT=str(CONNECTIONS), SENDER_TIMEOUT="10")
    (target,) = result["targets"]
    return target["achieved_rate"]


def run_locust(url: str, seconds: float, cpus: list[int] | None, out: Path) -> float:
    prefix = out.with_suffix("")
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench/locustfile.py"), "--headless",
               "-u", str(CONNECTIONS), "-r", str(CONNECTIONS), "-t", f"{seconds:g}s", "--host", url,
               "--only-summary", "--csv", str(prefix), "--loglevel", "WARNING"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "BENCH_PATH": PATH}, capture_output=True,
                          text=True, timeout=seconds + 60, preexec_fn=pinned_to(cpus))
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise BenchError(f"locust wrote no statistics (exit {done.returncode}):\n{done.stderr[-2000:]}")
    rows = {row["Name"]: row for row in csv.DictReader(stats.open())}
    total = rows["Aggregated"]
    if int(total["Failure Count"]):
        raise BenchError(f"locust saw {total['Failure Count']} failures against {url}{PATH}")
    return float(total["Requests/s"])


def run_bare(url: str, seconds: float, cpus: list[int] | None, out: Path, loop: str = "uvloop") -> float:
    command = [sys.executable, "-m", "bench.bare_loop", url + PATH, f"{seconds:g}", str(CONNECTIONS), loop]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60,
                          preexec_fn=pinned_to(cpus))
    if done.returncode:
        raise BenchError(f"the bare aiohttp loop failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip())


RUNNERS: dict[str, Callable[[str, float, list[int] | None, Path], float]] = {
    "sender": run_sender,
    "Locust FastHttpUser": run_locust,
    "bare aiohttp loop": run_bare,
    "bare aiohttp loop, asyncio's loop": lambda url, seconds, cpus, out: run_bare(url, seconds, cpus, out, "asyncio"),
}


def measure(running: Services, seconds: float, rounds: int, out: Path,
            advance: Callable[[str, float], None]) -> Loadgen:
    endpoint = running.start("bench.references.trivial", "server")
    load = running.cpus["load"] if running.cpus else None
    found: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    try:
        for number in range(rounds):
            order = TOOLS[number % len(TOOLS):] + TOOLS[:number % len(TOOLS)]
            for tool in order:
                advance(f"load generator: {tool}, round {number + 1}", 0)
                path = out / f"loadgen-{number}-{tool.split()[0]}.json"
                found[tool].append(RUNNERS[tool](endpoint.url, seconds, load, path))
                advance(f"load generator: {tool}: {found[tool][-1]:.0f}/s", seconds)
    finally:
        running.stop(endpoint)
    return Loadgen(duration=seconds, rounds=rounds, connections=CONNECTIONS,
                   endpoint=f"bench/references/trivial.py {PATH}",
                   server_cpus=running.cpus["server"] if running.cpus else None,
                   results={tool: Tool(rps=statistics.median(values), rounds=values) for tool, values in found.items()})
