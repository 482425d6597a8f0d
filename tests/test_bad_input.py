"""Random paths and query values never add metric series (labels come from closed sets), and
schemathesis, fuzzing the receiver's OpenAPI, finds no server error and no undeclared answer."""

from __future__ import annotations

import asyncio
import random
import re
import string
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import samples
from tools.processes import get

PATHS = 10_000


def series(url: str) -> set[tuple[str, frozenset]]:
    return set(samples(get(url)[1].decode()))


async def hammer(base: str, paths: list[str], concurrency: int = 64) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue = iter(paths)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def worker() -> None:
            for path in queue:
                async with session.get(base + path) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def random_paths(rng: random.Random, n: int) -> list[str]:
    alphabet = string.ascii_letters + string.digits + "-_.~%"
    shapes = [
        lambda: "/" + "".join(rng.choices(alphabet, k=rng.randint(1, 40))),  # anything: no route
        lambda: "/tasks/" + "".join(rng.choices(alphabet, k=rng.randint(65, 80))),  # a name too long: 422
        lambda: "/tasks/t?delay=" + rng.choice(["-1", "nan", "1e9", "x", "inf"]),  # a bad delay: 422
        lambda: "/" + "/".join("".join(rng.choices(string.ascii_lowercase, k=3)) for _ in range(rng.randint(2, 5))),
    ]
    return [rng.choice(shapes)() for _ in range(n)]


def test_ten_thousand_random_paths_add_no_series(start):
    upstream = start("upstream", UPSTREAM_DELAY="0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    rng = random.Random(1)
    # One of each kind of answer first, so every series these requests can make exists.
    asyncio.run(hammer(receiver.url, random_paths(rng, 200)))
    asyncio.run(hammer(upstream.url, random_paths(rng, 200)))
    before = {name: series(s.metrics_url) for name, s in (("receiver", receiver), ("upstream", upstream))}

    got = asyncio.run(hammer(receiver.url, random_paths(rng, PATHS)))
    asyncio.run(hammer(upstream.url, random_paths(rng, PATHS)))

    assert sum(got.values()) == PATHS and set(got) <= {404, 422}, got  # refused, never a 5xx
    for name, s in (("receiver", receiver), ("upstream", upstream)):
        added = series(s.metrics_url) - before[name]
        assert not added, f"{name}: {sorted(added)[:5]}"
        routes = {dict(labels).get("route") for metric, labels in before[name] if "route" in dict(labels)}
        assert len(routes) <= 6, routes  # route templates and "unmatched", never a raw path


def test_schemathesis_finds_no_server_error_and_no_undeclared_answer(start):
    # Upstream refuses long delays at once (400, which the receiver passes through), so no
    # generated case waits.
    upstream = start("upstream", UPSTREAM_DELAY="0", UPSTREAM_MAX_DELAY="0.05", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [str(st), "run", f"{receiver.url}/openapi.json", "--max-examples", "1000", "--generation-deterministic",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         "--no-color"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated and int(generated[1]) >= 1000 and generated[1] == generated[2], done.stdout[-2000:]
