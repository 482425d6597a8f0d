"""python -m bench.gil [--threads T] [--delay D] [--cpu-ms C] [--seconds S] [--out DIR]: threads beside the GIL.

models/steady.py's shared_gil() says that T threads which each wait D, then compute c, share
CPython's GIL as a processor-sharing server. This measures it on one core, first with the wait
a plain sleep, then with the wait an HTTP call to upstream through each layer the receiver's
threads call it with (http.client, urllib3, requests: the receiver's session, which goes straight
to upstream), requests as it comes (trust_env: it reads the proxy variables and looks for a .netrc
on every call, system calls that let go of the GIL), then with requests handed to the threads
from an event loop the way threaded mode does (run_in_executor) and def mode does (anyio's
to_thread, with a limiter of T). Each way runs alone in a process of its own pinned to the
server core, every thread always busy, for S seconds; its answers a second over the last two
thirds stand beside shared_gil(T, D, its CPU a request), the CPU read from the process itself.
Upstream runs on the other core.

Where a thread's time goes, a request, over the same window: from its last request's end
until it has the next (a thread of its own asks again at once; one from a loop is handed it);
its call beyond D; its work. With every thread busy they add up to T/μ − D, all of which the
model puts in the GIL's share. Then requests, the threads' way, once more at a switch
interval of 1 ms and of 20 ms (CPython's default is 5 ms): whether a shorter or longer turn
changes where a thread waits, or how long. It writes gil.json and gil.md to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import requests
import requests.adapters
import urllib3

from bench import machine
from bench.rates import window_rate
from bench.run import services
from models.steady import shared_gil
from receiver.clients import direct_session
from receiver.cpu import compute
from tools.processes import ROOT, pinned_to

# Each way of making the call, in the order the table lists them: what the thread waits on.
WAYS = ("sleep", "http.client", "urllib3", "requests", "requests, trust_env", "requests, run_in_executor",
        "requests, anyio to_thread")
FROM_A_LOOP = ("requests, run_in_executor", "requests, anyio to_thread")  # handed to the threads by an event loop
TIMEOUT = 30.0  # each call's, in seconds
INTERVALS = (0.001, 0.005, 0.02)  # the switch intervals requests runs at, in seconds
DEFAULT_INTERVAL = sys.getswitchinterval()  # CPython's: every way runs at it


def call(way: str, url: str, delay: float) -> tuple[Callable[[], object], Callable[[], None]]:
    """One thread's call, which waits D (a sleep, or upstream through a client) holding no GIL meanwhile,
    and what closes the connections it opened."""
    path = f"/work?delay={delay:g}"
    if way == "sleep":
        return lambda: time.sleep(delay), lambda: None
    host, port = url.removeprefix("http://").split(":")
    if way == "http.client":
        local, opened = threading.local(), []  # one connection a thread, kept open

        def with_http_client() -> object:
            if not hasattr(local, "connection"):
                local.connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
                opened.append(local.connection)
            local.connection.request("GET", path)
            return local.connection.getresponse().read()

        def close_all() -> None:
            for connection in opened:
                connection.close()
        return with_http_client, close_all
    if way == "urllib3":
        pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=1000, timeout=TIMEOUT)
        return lambda: pool.request("GET", path).data, pool.close
    # one session for the process, as the receiver's (straight to upstream; trust_env: as requests comes, reading
    # the proxy variables and looking for a .netrc every call); unlike its pool of 10, every thread keeps its connection
    session = requests.Session() if way == "requests, trust_env" else direct_session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=1000))
    return lambda: session.get(f"{url}{path}", timeout=TIMEOUT).content, session.close


def child(way: str, threads: int, delay: float, cpu_ms: float, seconds: float, url: str,
          interval: float | None = None) -> dict[str, Any]:
    """Run one way for `seconds` with every thread busy (at this switch interval, if given); what it did."""
    used_before = sys.getswitchinterval()
    if interval is not None:
        sys.setswitchinterval(interval)
    try:
        return _run(way, threads, delay, cpu_ms, seconds, url)
    finally:
        sys.setswitchinterval(used_before)


def _run(way: str, threads: int, delay: float, cpu_ms: float, seconds: float, url: str) -> dict[str, Any]:
    wait, close = call(way, url, delay)

    last = threading.local()  # when this thread's request before ended

    def request() -> list[float]:
        began = time.monotonic()
        between = began - getattr(last, "ended", began)  # handed this request (0: a thread of its own asks again)
        wait()
        called = time.monotonic()
        compute(cpu_ms)  # deliberately in this thread: it holds the GIL while it computes
        last.ended = time.monotonic()
        return [between, began, called, last.ended]

    done: list[list[float]] = []  # a request's: time handed over, call begun, call done, work done (back on the loop)
    started, cpu = time.monotonic(), time.process_time()
    stop = started + seconds
    from_a_loop = way in FROM_A_LOOP
    if from_a_loop:
        asyncio.run(_from_a_loop(way, request, threads, stop, done))
    else:
        def thread() -> None:
            while time.monotonic() < stop:
                done.append(request())
        pool = [threading.Thread(target=thread) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    elapsed, used = time.monotonic() - started, time.process_time() - cpu
    close()
    answered = [times[-1] - started for times in done]  # the answers' times; the rate runs' window over them
    steady = [times for times, t in zip(done, answered) if seconds / 3 <= t <= seconds]  # the same window

    def mean(span: Callable[[list[float]], float]) -> float | None:
        return sum(map(span, steady)) / len(steady) if steady else None

    return {"answers": len(done), "window_rate": window_rate(answered, [0.0] * len(answered), seconds),
            "cpu_seconds": used, "elapsed": elapsed, "interval": sys.getswitchinterval(),
            # Where a thread's time goes, a request: with every thread busy, T/μ = D + these three (Little's law).
            "handed_over": mean(lambda times: times[0]),
            "call_beyond_delay": mean(lambda times: times[2] - times[1] - delay),
            "work": mean(lambda times: times[3] - times[2]),
            "back_on_loop": mean(lambda times: times[4] - times[3]) if from_a_loop else None}  # the loop's


async def _from_a_loop(way: str, request: Callable[[], list[float]], threads: int, stop: float,
                       done: list[list[float]]) -> None:
    """Requests handed to T threads from an event loop, as threaded and def mode do, with a backlog of 3·T."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(threads)
    limiter = anyio.CapacityLimiter(threads)

    async def client() -> None:  # one of 4·T clients, each asking again the moment it is answered
        while time.monotonic() < stop:
            if way == "requests, run_in_executor":
                times = await loop.run_in_executor(executor, request)
            else:
                times = await anyio.to_thread.run_sync(request, limiter=limiter)
            done.append([*times, time.monotonic()])

    await asyncio.gather(*(client() for _ in range(4 * threads)))
    executor.shutdown(wait=True)


def measure(threads: int, delay: float, cpu_ms: float, seconds: float, out: Path) -> None:
    """Every way in a process of its own, beside the model; gil.json and gil.md written to out."""
    cpus = machine.cores()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lab-gil-") as tmp, services(Path(tmp), cpus) as running:
        upstream = running.start("upstream", "load")
        runs = [(way, None) for way in WAYS] + [("requests", i) for i in INTERVALS if i != DEFAULT_INTERVAL]
        for way, interval in runs:
            at = "" if interval is None else f", switch interval {interval * 1000:g} ms"
            print(f"gil: {way}: {threads} threads, D = {delay:g} s, c = {cpu_ms:g} ms, {seconds:g} s{at}", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "bench.gil", "--child", way, "--threads", str(threads), "--delay", str(delay),
                 "--cpu-ms", str(cpu_ms), "--seconds", str(seconds), "--url", upstream.url,
                 *(["--interval", str(interval)] if interval is not None else [])],
                cwd=ROOT, capture_output=True, text=True, timeout=seconds + 4 * TIMEOUT,
                preexec_fn=pinned_to(cpus["server"] if cpus else None))
            if done.returncode:
                raise SystemExit(f"gil: {way} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            rows.append(row(way, json.loads(done.stdout.strip().splitlines()[-1]), threads, delay))
    out.mkdir(parents=True, exist_ok=True)
    knobs = {"threads": threads, "delay": delay, "cpu_ms": cpu_ms, "seconds": seconds,
             "pinning": cpus, "git": machine.git_commit(), "python": sys.version.split()[0]}
    (out / "gil.json").write_text(json.dumps({"knobs": knobs, "ways": rows}, indent=1) + "\n")
    (out / "gil.md").write_text(table(knobs, rows))


def row(way: str, measured: dict[str, Any], threads: int, delay: float) -> dict[str, Any]:
    """A way's row: what it measured beside the model, and the model's time beyond D a request, T/μ − D."""
    per_request = measured["cpu_seconds"] / measured["answers"]
    model = shared_gil(threads, delay, per_request)
    return {"way": way, **measured, "cpu_per_request": per_request, "model": model,
            "ratio": measured["window_rate"] / model, "model_beyond_delay": threads / model - delay}


def table(knobs: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    ways = [r for r in rows if r["interval"] == DEFAULT_INTERVAL]
    lines = [f"# Threads beside the GIL: T = {knobs['threads']}, D = {knobs['delay']:g} s, "
             f"c = {knobs['cpu_ms']:g} ms, one core, {knobs['seconds']:g} s a way", "",
             "Written by `python -m bench.gil` (its docstring says how). *model*: shared_gil(T, D, the process's "
             "CPU a request), models/steady.py.", "",
             "| the thread waits on | answers/s | CPU a request | model | measured / model |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['way']} | {r['window_rate']:.1f} | {r['cpu_per_request'] * 1000:.1f} ms | {r['model']:.1f} | "
              f"{r['ratio']:.3f} |" for r in ways]
    lines += ["", "## Where a request's time beyond D goes", "",
              "A thread's milliseconds a request, over the same window: from its last request's end until it has "
              "the next (*handed over*), its call beyond D, its work, and their *sum*, which the *model* "
              "(T/μ − D) spends all in the GIL's share. Then the loop's: the answer back on the loop.", "",
              "| the thread waits on | switch interval | handed over | the call beyond D | the work | sum | model "
              "| back on the loop |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['way']} | {r['interval'] * 1000:g} ms | {ms(r['handed_over'])} | {ms(r['call_beyond_delay'])} | "
              f"{ms(r['work'])} | {ms(beyond_delay(r))} | {ms(r['model_beyond_delay'])} | {ms(r['back_on_loop'])} |"
              for r in sorted(rows, key=order)]
    return "\n".join(lines) + "\n"


def beyond_delay(row: dict[str, Any]) -> float | None:
    """A thread's time a request beyond D: handed over, the call beyond D, the work."""
    parts = (row["handed_over"], row["call_beyond_delay"], row["work"])
    return None if None in parts else sum(parts)


def order(row: dict[str, Any]) -> tuple[int, float]:
    return WAYS.index(row["way"]), row["interval"]


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--cpu-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "gil")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.delay, args.cpu_ms, args.seconds, args.url,
                               args.interval)))
        return 0
    measure(args.threads, args.delay, args.cpu_ms, args.seconds, args.out)
    sys.stdout.write((args.out / "gil.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
