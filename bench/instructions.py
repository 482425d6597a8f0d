"""Metrics cost counted in instructions: the receiver under callgrind, metrics on and off.

Throughput ratios on a shared machine move by several percent from run to run; the number
of instructions a request takes does not. This runs the receiver (async mode, LOG_LEVEL=
warning, upstream at zero delay) under valgrind's callgrind, warms it up uninstrumented,
then counts the instructions of a fixed number of requests, for each configuration.
It explains the instrumentation goal; it does not replace it (the goal is throughput, and
extra instructions also cost cache misses that callgrind does not count).

    python -m bench.instructions [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bench.passthrough import PATH, QUIET
from tools.processes import Service

CONFIGURATIONS = {
    "receiver": QUIET,
    "receiver, metrics off": {**QUIET, "RECEIVER_METRICS": "false"},
}
WARMUP = 500  # requests before counting: the interpreter's specializations done, pools filled


async def drive(url: str, requests: int, concurrency: int) -> None:
    """Exactly `requests` GETs of url, `concurrency` at a time; any non-200 answer raises."""
    left = iter(range(requests))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def worker() -> None:
            for _ in left:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
        await asyncio.gather(*(worker() for _ in range(concurrency)))


def control(*args: str) -> None:
    # vgdb finds a process by a file name holding $HOST, and the receiver's HOST is its bind address.
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120,
                   env={**os.environ, "HOST": "127.0.0.1"})


def total_instructions(out_dir: Path) -> int:
    """Instructions in the dumps callgrind wrote (the `summary:` line of each)."""
    total = 0
    for dump in out_dir.glob("callgrind.out*"):
        found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
        total += int(found[1]) if found else 0
    return total


def count(upstream: Service, label: str, env: dict[str, str], requests: int, concurrency: int, tmp: Path) -> int:
    """Instructions the receiver ran for `requests` requests, after a warm-up."""
    out_dir = tmp / re.sub(r"\W+", "-", label)
    out_dir.mkdir(exist_ok=False)
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/callgrind.out"]
    receiver = Service("receiver", {**env, "UPSTREAM_URL": upstream.url}, tmp / f"{out_dir.name}.log", wrapper=wrapper)
    try:
        receiver.start().wait_healthy(timeout=120)
        pid = str(receiver.process.pid)
        asyncio.run(drive(receiver.url + PATH, WARMUP, concurrency))
        control("--instr=on", pid)
        control("--zero", pid)
        asyncio.run(drive(receiver.url + PATH, requests, concurrency))
        control("--dump", pid)
        for dump in out_dir.glob("callgrind.out*"):  # keep only the dump of the counted requests
            if not dump.name.endswith(".1"):
                dump.unlink()
        return total_instructions(out_dir)
    finally:
        receiver.stop(timeout=60)


def measure(requests: int = 2000, concurrency: int = 16, keep: Path | None = None) -> dict[str, Any]:
    """{"configs": {label: instructions per request}, "ratio": metrics on over off, "requests", "concurrency"}.

    keep: a directory to leave callgrind's dumps in (for callgrind_annotate), one folder per configuration.
    """
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as name:
        tmp = Path(name) if keep is None else keep
        tmp.mkdir(parents=True, exist_ok=True)
        upstream = Service("upstream", {"UPSTREAM_DELAY": "0", "LOG_LEVEL": "warning"}, tmp / "upstream.log")
        try:
            upstream.start().wait_healthy()
            per_request = {label: count(upstream, label, env, requests, concurrency, tmp) / requests
                           for label, env in CONFIGURATIONS.items()}
        finally:
            upstream.stop()
    on, off = per_request["receiver"], per_request["receiver, metrics off"]
    return {"configs": per_request, "ratio": on / off, "requests": requests, "concurrency": concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests counted per configuration")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--keep", type=Path, help="leave callgrind's dumps in this (new) directory")
    args = parser.parse_args()
    report = measure(args.requests, args.concurrency, args.keep)
    for label, instructions in report["configs"].items():
        print(f"{label:<24} {instructions:>10,.0f} instructions/request")
    print(f"metrics on / off: {report['ratio']:.3f}× the instructions ({report['ratio'] - 1:+.1%})")


if __name__ == "__main__":
    main()
