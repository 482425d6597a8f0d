"""The floor under the async-scale burst: the same burst against servers that do less than the receiver.

A burst of N = 1,000 costs more than its servers' work: the sender opens 1,000 connections
and sends 1,000 requests, and the kernel queues and accepts them, on the same two cores.
To tell the receiver's share from that floor, the burst runs, after a warm one, against:

  waits                 a server that only waits D (bench/references/waits.py): no call, no
                        framework beyond aiohttp.web. What it takes beyond D is the floor.
  waits, no HTTP library  the same with an asyncio.Protocol for a server (waits_raw.py): the
                        floor with the server's own Python cut to the bone.
  FastAPI proxy, L=0    FastAPI + aiohttp making the receiver's call and nothing else, with no
                        connection limit (the receiver's L=0 line).
  aiohttp.web proxy, L=0  the same call with no framework beyond aiohttp's own server.

Each runs alone on the server core, against the same upstream, with the same sender.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench import goals
from bench.passthrough import cpu_seconds
from bench.results import Floor
from bench.run import BenchError, Services, sender

SERVERS = {  # label -> (module, its env beyond UPSTREAM_URL)
    "waits D, no call": (goals.FLOOR, {}),
    "waits D, no HTTP library": ("bench.references.waits_raw", {}),
    "FastAPI proxy, L=0": ("bench.references.fastapi_proxy", {"REFERENCE_POOL_LIMIT": "0"}),
    "aiohttp.web proxy, L=0": ("bench.references.aiohttp_proxy", {"REFERENCE_POOL_LIMIT": "0"}),
}
BURSTS = 2  # a warm one (connections to upstream opened), then the one recorded


def seconds(delay: float) -> float:
    """How long the floors take, about: each server's bursts, each D and the sender's share of a second."""
    return len(SERVERS) * BURSTS * (delay + 0.5)


def measure(running: Services, upstream: str, n: int, delay: float, out: Path, load_cpus: list[int] | None,
            advance: Callable[[str, float], None]) -> list[Floor]:
    rows = []
    for label, (module, env) in SERVERS.items():
        advance(f"floor {label}: bursts of N={n}", 0)
        server = running.start(module, "server", UPSTREAM_URL=upstream, **env)
        timeout = 30 + 3 * delay
        for i in range(BURSTS):
            before = cpu_seconds(server.process.pid)
            result = sender([server.url], out / f"floor-{module.rsplit('.', 1)[-1]}-{i}.json", load_cpus,
                            timeout=timeout + 60, SENDER_CONCURRENCY=str(n), SENDER_DELAY=f"{delay:g}",
                            SENDER_TIMEOUT=f"{timeout:g}")
            used = cpu_seconds(server.process.pid) - before
        running.stop(server)
        (target,) = result["targets"]
        failed = sum(r["status"] != 200 for r in target["results"])
        if failed:
            raise BenchError(f"floor {label} N={n}: {failed} of {n} requests failed; see the services' logs")
        rows.append(Floor(label=label, module=module, n=n, delay=delay, makespan=target["makespan"],
                          cpu=round(used, 3)))
        advance(f"floor {label}: {target['makespan']:.3f} s", seconds(delay) / len(SERVERS))
    return rows
