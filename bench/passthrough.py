"""Pass-through cost: the receiver against plain proxies, at zero upstream delay, under wrk.

Every configuration serves GET /tasks/task1 by calling upstream's /work (UPSTREAM_DELAY=0):
what is left is each server's own cost per request. The server under test runs alone on one
core; upstream and wrk share the other, so the server's core is the bottleneck (each result
says how busy it was). The configurations run in rounds, each round in a rotated order, and
each reports the median of its rounds: compare the ratios, measured side by side, not the
absolute numbers, on a machine where anything else runs.

    python -m bench.passthrough [--duration 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import machine
from bench.goals import PASSTHROUGH_REFERENCES, relative
from bench.results import Pair, Passthrough, Server, WrkRound
from tools.processes import Service, pinned_to

# label: (module, environment). Upstream's URL is added to each.
QUIET = {"RECEIVER_MODE": "async", "LOG_LEVEL": "warning"}  # the receiver as the benchmark runs it
CONFIGURATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "receiver": ("receiver", QUIET),
    "receiver, LOG_LEVEL=info": ("receiver", {**QUIET, "LOG_LEVEL": "info"}),  # the lab's default logging
    "receiver, metrics off": ("receiver", {**QUIET, "RECEIVER_METRICS": "false"}),
    "receiver, culprits off": ("receiver", {**QUIET, "LOOP_BLOCK_THRESHOLD": "0"}),  # the sampler thread's cost
    "receiver, httpx": ("receiver", {**QUIET, "RECEIVER_ASYNC_CLIENT": "httpx"}),  # the other async client
    "FastAPI proxy": ("bench.references.fastapi_proxy", {}),  # FastAPI + aiohttp, the receiver's work and no more
    "FastAPI + httpx proxy": ("bench.references.fastapi_httpx_proxy", {}),
    "aiohttp.web proxy": ("bench.references.aiohttp_proxy", {}),
}
REFERENCES = PASSTHROUGH_REFERENCES  # what every configuration is compared with
# The ratios the goals judge, measured side by side: both servers on the server core at once,
# each under its own wrk. Whatever slows the machine down slows both in the same second,
# so a round's ratio moves far less than two runs one after another (docs/performance.md).
PAIRS = (("receiver", "receiver, metrics off"), ("receiver", "FastAPI proxy"), ("receiver", "aiohttp.web proxy"),
         ("receiver", "receiver, culprits off"), ("receiver, httpx", "FastAPI + httpx proxy"),
         ("receiver, httpx", "receiver"))
CONNECTIONS = 64
WRK_TIMEOUT = 30  # seconds: a request slower than this is a socket error, and the round invalid
PATH = "/tasks/task1"
WARMUP = 1.0  # seconds of load on each server before the first round: lazy imports done, pools filled

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    return path


def cores() -> dict[str, int]:
    """machine.cores()'s choice, one core each: the server's and the load's."""
    pinning = machine.cores()
    if pinning is None:
        raise RuntimeError(f"the pass-through measurement needs 2 cores, this process may use "
                           f"{sorted(os.sched_getaffinity(0))}")
    return {role: found[0] for role, found in pinning.items()}


def parse_wrk(output: str) -> dict[str, Any]:
    """requests/s, p50 and p99 in ms, and every failure wrk counted, from `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    done = re.search(r"^\s+(\d+) requests in ", output, re.MULTILINE)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk's output:\n{output}")
    found = re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)  # "1.03s " ends in a space
    latency = {percent: float(number) * UNITS[unit] for percent, number, unit in found}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(rps[1]),
        "requests": int(done[1]) if done else 0,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_command(wrk: str, url: str, seconds: int) -> list[str]:
    # wrk's own timeout is 2 s: a server that answers slower (httpx.AsyncClient's pool at 64
    # connections) is still answering, and is measured, not counted as socket errors
    return [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s", "--latency", url]


def wrk_output(command: list[str], returncode: int, stdout: str, stderr: str) -> str:
    """wrk's report, or RuntimeError if wrk failed."""
    if returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({returncode}):\n{stdout}{stderr}")
    return stdout


def check_round(what: str, got: dict[str, Any], output: str, server: Service) -> None:
    """RuntimeError unless every request of the round was answered 2xx by a server still running."""
    if got["non_2xx"] or got["socket_errors"] or not got["requests"] or server.process.poll() is not None:
        raise RuntimeError(f"{what}: {got['non_2xx']} non-2xx answers, {got['socket_errors']} socket errors: "
                           f"the round is invalid\n{output}\n{server.log()[-3000:]}")


def run_wrk(wrk: str, url: str, duration: float, core: int) -> tuple[str, float]:
    seconds = max(1, round(duration))
    command = wrk_command(wrk, url, seconds)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, preexec_fn=pinned_to({core}))
    return wrk_output(command, done.returncode, done.stdout, done.stderr), seconds


def paired_round(wrk: str, servers: tuple[Service, Service], duration: float, core: int) -> tuple[float, float]:
    """Both servers under load at once for `duration` s: each one's CPU time per request, in µs."""
    seconds = max(1, round(duration))
    before = [cpu_seconds(server.process.pid) for server in servers]
    commands = [wrk_command(wrk, server.url + PATH, seconds) for server in servers]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=pinned_to({core})) for command in commands]
    finished = [run.communicate(timeout=seconds + 30) for run in runs]  # first: returncode is set by then
    outputs = [wrk_output(command, run.returncode, out, err)
               for command, run, (out, err) in zip(commands, runs, finished)]
    used = [cpu_seconds(server.process.pid) - start for server, start in zip(servers, before)]
    answers = [parse_wrk(output) for output in outputs]
    for server, got, output in zip(servers, answers, outputs):
        check_round(f"{server.module} side by side", got, output, server)
    return used[0] / answers[0]["requests"] * 1e6, used[1] / answers[1]["requests"] * 1e6


def measure(duration: float = 5.0, rounds: int = 3, progress: Callable[[str], None] | None = None,
            configurations: dict[str, tuple[str, dict[str, str]]] | None = None) -> Passthrough:
    """Run every configuration `rounds` times for `duration` s each, interleaved; medians per configuration.

    Passthrough.configs: per label the medians of its rounds (req/s, p50 and p99 in ms, the share
    of its core the server used, its CPU time per request), every round's numbers, and "vs":
    {reference: same-round ratio of req/s}, "vs_cpu": the same from CPU time per request.
    Passthrough.paired: {"<a> vs <b>": a's throughput over b's, both on the server core at once,
    the median of `rounds` rounds (from CPU time per request)} for PAIRS. Besides: the cores,
    wrk's version, seconds per round, rounds, connections.
    A round with any non-2xx answer or socket error raises RuntimeError: a failing server is an
    error, never a lower number.
    """
    if duration < 1 or rounds < 1:
        raise ValueError(f"duration must be at least 1 s and rounds at least 1, got {duration:g} s, {rounds}")
    wrk = wrk_binary()
    pinned = cores()
    configurations = configurations or CONFIGURATIONS
    say = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="bench-passthrough-") as tmp:
        upstream = Service("upstream", {"UPSTREAM_DELAY": "0", "LOG_LEVEL": "warning"}, Path(tmp, "upstream.log"),
                           cpus={pinned["load"]})
        servers: dict[str, Service] = {}
        try:
            upstream.start().wait_healthy()
            for i, (label, (module, env)) in enumerate(configurations.items()):
                servers[label] = Service(module, {**env, "UPSTREAM_URL": upstream.url}, Path(tmp, f"server-{i}.log"),
                                         cpus={pinned["server"]})
                servers[label].start()
            for server in servers.values():
                server.wait_healthy()
                run_wrk(wrk, server.url + PATH, WARMUP, pinned["load"])
            runs = separate_rounds(wrk, servers, duration, rounds, pinned["load"], say)
            paired = {f"{a} vs {b}": paired_rounds(wrk, servers, (a, b), duration, rounds, pinned["load"], say)
                      for a, b in PAIRS if {a, b} <= set(servers)}
        finally:
            for server in servers.values():
                server.stop()
            upstream.stop()
    return Passthrough(configs=summary(runs), paired=paired, cores=pinned, wrk=machine.wrk_version(),
                       duration=max(1, round(duration)), rounds=rounds, connections=CONNECTIONS)


def separate_rounds(wrk: str, servers: dict[str, Service], duration: float, rounds: int, core: int,
                    say: Callable[[str], None]) -> dict[str, list[WrkRound]]:
    """Each server alone under wrk for `duration` s, `rounds` times, in an order rotated every round."""
    runs: dict[str, list[WrkRound]] = {label: [] for label in servers}
    for r in range(rounds):
        labels = list(servers)
        labels = labels[r % len(labels):] + labels[: r % len(labels)]  # rotate: no fixed position
        for label in labels:
            server = servers[label]
            before, started = cpu_seconds(server.process.pid), time.perf_counter()
            output, _ = run_wrk(wrk, server.url + PATH, duration, core)
            used, seconds = cpu_seconds(server.process.pid) - before, time.perf_counter() - started
            got = parse_wrk(output)
            check_round(f"{label}, round {r + 1}", got, output, server)
            requests = got["requests"]
            runs[label].append(WrkRound(**got, server_cpu=round(used / seconds, 3),
                                        cpu_us=round(used / requests * 1e6, 1)))
            say(f"round {r + 1}/{rounds}  {label:<26} {got['rps']:>9,.0f} req/s  "
                f"p50 {got['p50_ms']:.2f} ms  p99 {got['p99_ms']:.2f} ms  server core {used / seconds:.0%}  "
                f"{used / requests * 1e6:.0f} µs CPU/request")
    return runs


def paired_rounds(wrk: str, servers: dict[str, Service], pair: tuple[str, str], duration: float, rounds: int,
                  core: int, say: Callable[[str], None]) -> Pair:
    """The pair side by side, `rounds` times: a's throughput over b's at the same CPU."""
    a, b = pair
    cpu = []
    for r in range(rounds):
            # Which of the two starts first swaps every round: the first of a pair comes out
            # slower, whichever it is (docs/performance.md, "Side by side").
        if r % 2 == 0:
            cpu.append(paired_round(wrk, (servers[a], servers[b]), duration, core))
        else:
            cpu.append(paired_round(wrk, (servers[b], servers[a]), duration, core)[::-1])
        say(f"round {r + 1}/{rounds}  side by side: {a} vs {b}  {cpu[-1][1] / cpu[-1][0]:.3f}×")
    shares = [theirs / mine for mine, theirs in cpu]  # a's throughput over b's at the same CPU
    return Pair(a=a, b=b, ratio=statistics.median(shares), rounds=[round(r, 4) for r in shares],
                cpu_us={a: statistics.median(c for c, _ in cpu), b: statistics.median(c for _, c in cpu)})


def summary(runs: dict[str, list[WrkRound]]) -> dict[str, Server]:
    """Per configuration the medians of its rounds, and its ratios to the references."""
    def median(values: Iterable[float | None]) -> float:
        return statistics.median(v for v in values if v is not None)  # wrk printed each (check_round)

    configs = {label: Server(rps=median(r.rps for r in mine), p50_ms=median(r.p50_ms for r in mine),
                             p99_ms=median(r.p99_ms for r in mine), server_cpu=median(r.server_cpu for r in mine),
                             cpu_us=median(r.cpu_us for r in mine), rounds=mine)
               for label, mine in runs.items()}
    return {label: replace(c, vs=ratios(configs, label), vs_cpu=ratios(configs, label, "cpu_us"))
            for label, c in configs.items()}


def ratios(configs: dict[str, Server], label: str, key: str = "rps") -> dict[str, float | None]:
    """label against each reference, the median of same-round ratios.

    key "rps": label's req/s as a multiple of the reference's. key "cpu_us": the reference's
    CPU time per request over label's, the same multiple measured as capacity (it holds
    even in a round where something else slowed the load core down).
    """
    out = {}
    for reference in REFERENCES:
        if reference in configs and label in configs:
            out[reference] = (relative(configs, label, reference) if key == "rps"
                              else relative(configs, reference, label, key))  # CPU per request: less is faster
    return out


def table(report: Passthrough) -> str:
    configs = report.configs
    short = {"FastAPI proxy": "FastAPI", "FastAPI + httpx proxy": "FastAPI+httpx", "aiohttp.web proxy": "aiohttp"}
    head = (f"{'configuration':<26} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'core':>5} {'µs CPU':>7}  "
            + "  ".join(f"{'× ' + short[r] + ' req/s':>17} {'(CPU)':>6}" for r in REFERENCES))
    rows = [head, "-" * len(head)]
    for label, c in configs.items():
        by_rps, by_cpu = c.vs, c.vs_cpu
        rows.append(
            f"{label:<26} {c.rps:>7,.0f} {c.p50_ms:>7.2f} {c.p99_ms:>7.2f} {c.server_cpu:>5.0%} "
            f"{c.cpu_us:>7.0f}  "
            + "  ".join(f"{by_rps.get(ref, float('nan')):>17.2f} {by_cpu.get(ref, float('nan')):>6.2f}"
                        for ref in REFERENCES)
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows medians")
    args = parser.parse_args()
    report = measure(args.duration, args.rounds, progress=print)
    print(f"\n{report.wrk}, -t1 -c{report.connections} -d{report.duration}s, {report.rounds} rounds; "
          f"server on core {report.cores['server']}, upstream (UPSTREAM_DELAY=0) and wrk on core "
          f"{report.cores['load']}; medians; ratios are medians of same-round ratios; "
          f"core = the server's CPU use (100% = its core saturated); µs CPU = the server's CPU time per "
          f"request; × = req/s against the reference's, (CPU) = the same from CPU time per request\n")
    print(table(report))
    print("\nside by side (both on the server core at once; a's throughput over b's, from CPU time per request):")
    for label, pair in report.paired.items():
        print(f"  {label:<44} {pair.ratio:.3f}×  (rounds {min(pair.rounds):.3f}–{max(pair.rounds):.3f})")


if __name__ == "__main__":
    main()
