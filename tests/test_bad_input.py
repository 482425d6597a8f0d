"""Random paths and query values never add metric series (labels come from closed sets), and
schemathesis, fuzzing the receiver's OpenAPI in every mode with all its checks, finds every request
the spec admits accepted, every one it refuses refused, and every answer declared."""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from lab.model import MODES
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
    # LOOP_BLOCK_THRESHOLD=0: no culprit series. Their labels name code, not anything a request
    # says (bounded by LOOP_CULPRITS_MAX, tests/test_culprits.py), and a machine under load can
    # stall the loop past the threshold while 64 connections hammer it.
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, LOG_LEVEL="warning",
                     LOOP_BLOCK_THRESHOLD="0")
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


# Upstream's bound on a delay: small, so that no generated case waits long, and not a round
# number, so that a spec that does not take its bound from upstream cannot match it by chance.
FUZZ_MAX_DELAY = "0.0125"
EXAMPLES = 500  # generated cases per operation and phase, at most: /tasks/{name} alone gets more than this


@pytest.mark.parametrize("mode", MODES)
def test_schemathesis_with_every_check_passes_in_every_mode(start, tmp_path, mode):
    # Every check: what the spec admits is accepted (positive_data_acceptance), what it refuses
    # is refused (negative_data_rejection), and every answer is declared (status, headers, body).
    upstream = start("upstream", UPSTREAM_DELAY="0", UPSTREAM_MAX_DELAY=FUZZ_MAX_DELAY, LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    # The spec's bound on ?delay= is upstream's, read from its /info at start, and /info says so:
    # so no generated delay is one upstream refuses.
    info = json.loads(get(f"{receiver.url}/info")[1])
    assert info["max_delay"] == {"seconds": float(FUZZ_MAX_DELAY), "source": "upstream", "reason": None}, info
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [str(st), "run", f"{receiver.url}/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
         "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,  # cwd: st's own files go there
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated and int(generated[1]) >= EXAMPLES and generated[1] == generated[2], done.stdout[-2000:]
