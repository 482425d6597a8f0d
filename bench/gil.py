"""python -m bench.gil [--threads T] [--delay D] [--cpu-ms C] [--seconds S] [--out DIR]: threads beside the GIL.

models/steady.py's shared_gil() says that T threads which each wait D, then compute c, share
CPython's GIL as a processor-sharing server. This measures it on one core, first with the wait
a plain sleep, then with the wait an HTTP call to upstream through each layer the receiver's
threads call it with (http.client, urllib3, requests), then with requests handed to the threads
from an event loop the way threaded mode does (run_in_executor) and def mode does (anyio's
to_thread, with a limiter of T). Each way runs alone in a process of its own pinned to the
server core, every thread always busy, for S seconds; its answers a second over the last two
thirds stand beside shared_gil(T, D, its CPU a request), the CPU read from the process itself.
Upstream runs on the other core. It writes gil.json and gil.md to --out.
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
from receiver.cpu import compute
from tools.processes import ROOT, pinned_to

# Each way of making the call, in the order the table lists them: what the thread waits on.
WAYS = ("sleep", "http.client", "urllib3", "requests", "requests, run_in_executor", "requests, anyio to_thread")
TIMEOUT = 30.0  # each call's, in seconds


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
    # one session for the process, as the receiver's; unlike its default pool of 10, every thread keeps its connection
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=1000))
    return lambda: session.get(f"{url}{path}", timeout=TIMEOUT).content, session.close


def child(way: str, threads: int, delay: float, cpu_ms: float, seconds: float, url: str) -> dict[str, Any]:
    """Run one way for `seconds` with every thread busy; what it did, for the parent."""
    wait, close = call(way, url, delay)

    def request() -> None:
        wait()
        compute(cpu_ms)  # deliberately in this thread: it holds the GIL while it computes

    done: list[float] = []
    started, cpu = time.monotonic(), time.process_time()
    stop = started + seconds
    if way.startswith("requests, "):
        asyncio.run(_from_a_loop(way, request, threads, stop, done))
    else:
        def thread() -> None:
            while time.monotonic() < stop:
                request()
                done.append(time.monotonic())
        pool = [threading.Thread(target=thread) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    elapsed, used = time.monotonic() - started, time.process_time() - cpu
    close()
    answered = [t - started for t in done]  # the answers' times; the rate runs' window over them
    return {"answers": len(done), "window_rate": window_rate(answered, [0.0] * len(answered), seconds),
            "cpu_seconds": used, "elapsed": elapsed}


async def _from_a_loop(way: str, request: Callable[[], None], threads: int, stop: float, done: list[float]) -> None:
    """Requests handed to T threads from an event loop, as threaded and def mode do, with a backlog of 3·T."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(threads)
    limiter = anyio.CapacityLimiter(threads)

    async def client() -> None:  # one of 4·T clients, each asking again the moment it is answered
        while time.monotonic() < stop:
            if way == "requests, run_in_executor":
                await loop.run_in_executor(executor, request)
            else:
                await anyio.to_thread.run_sync(request, limiter=limiter)
            done.append(time.monotonic())

    await asyncio.gather(*(client() for _ in range(4 * threads)))
    executor.shutdown(wait=True)


def measure(threads: int, delay: float, cpu_ms: float, seconds: float, out: Path) -> None:
    """Every way in a process of its own, beside the model; gil.json and gil.md written to out."""
    cpus = machine.cores()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lab-gil-") as tmp, services(Path(tmp), cpus) as running:
        upstream = running.start("upstream", "load")
        for way in WAYS:
            print(f"gil: {way}: {threads} threads, D = {delay:g} s, c = {cpu_ms:g} ms, {seconds:g} s", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "bench.gil", "--child", way, "--threads", str(threads), "--delay", str(delay),
                 "--cpu-ms", str(cpu_ms), "--seconds", str(seconds), "--url", upstream.url],
                cwd=ROOT, capture_output=True, text=True, timeout=seconds + 4 * TIMEOUT,
                preexec_fn=pinned_to(cpus["server"] if cpus else None))
            if done.returncode:
                raise SystemExit(f"gil: {way} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            per_request = measured["cpu_seconds"] / measured["answers"]
            model = shared_gil(threads, delay, per_request)
            rows.append({"way": way, **measured, "cpu_per_request": per_request, "model": model,
                         "ratio": measured["window_rate"] / model})
    out.mkdir(parents=True, exist_ok=True)
    knobs = {"threads": threads, "delay": delay, "cpu_ms": cpu_ms, "seconds": seconds,
             "pinning": cpus, "git": machine.git_commit(), "python": sys.version.split()[0]}
    (out / "gil.json").write_text(json.dumps({"knobs": knobs, "ways": rows}, indent=1) + "\n")
    (out / "gil.md").write_text(table(knobs, rows))


def table(knobs: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"# Threads beside the GIL: T = {knobs['threads']}, D = {knobs['delay']:g} s, "
             f"c = {knobs['cpu_ms']:g} ms, one core, {knobs['seconds']:g} s a way", "",
             "Written by `python -m bench.gil` (its docstring says how). *model*: shared_gil(T, D, the process's "
             "CPU a request), models/steady.py.", "",
             "| the thread waits on | answers/s | CPU a request | model | measured / model |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['way']} | {r['window_rate']:.1f} | {r['cpu_per_request'] * 1000:.1f} ms | {r['model']:.1f} | "
              f"{r['ratio']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gil", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--cpu-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "gil")
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.delay, args.cpu_ms, args.seconds, args.url)))
        return 0
    measure(args.threads, args.delay, args.cpu_ms, args.seconds, args.out)
    sys.stdout.write((args.out / "gil.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
