"""Pool saturation: the receiver's thread pool, anyio's tokens and aiohttp's connector show their cap being hit."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import eventually, scrape
from tools.processes import get

D, N, CAP = 1.0, 5, 2


def pools(receiver) -> dict[tuple[str, str], float]:
    """{(busy|waiting|limit, pool): value} from the receiver's /metrics."""
    return {(name.removeprefix("receiver_pool_"), dict(labels)["pool"]): value
            for (name, labels), value in scrape(receiver.metrics_url).items() if name.startswith("receiver_pool_")}


@pytest.mark.parametrize("mode, knob, pool", [("threaded", "RECEIVER_THREADS", "threads"),
                                              ("def", "RECEIVER_THREADPOOL_TOKENS", "anyio"),
                                              ("async", "RECEIVER_POOL_LIMIT", "aiohttp")])
def test_a_pool_at_its_cap_shows_busy_and_waiting(start, mode, knob, pool):
    upstream = start("upstream", UPSTREAM_DELAY=f"{D:g}", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, LOG_LEVEL="warning", **{knob: str(CAP)})
    idle = pools(receiver)
    assert (idle[("busy", pool)], idle[("waiting", pool)], idle[("limit", pool)]) == (0, 0, CAP)
    statuses: list[int] = []
    burst = [threading.Thread(target=lambda: statuses.append(get(f"{receiver.url}/tasks/t", timeout=30)[0]))
             for _ in range(N)]
    for thread in burst:
        thread.start()
    # Within the first wave: CAP calls running, the rest waiting. The wave's D counts from when
    # its first call took the pool (not from when the threads were started: on a loaded machine
    # the requests can take a while to get there), and the look stops well before it ends.
    first = eventually(lambda: (time.monotonic() if pools(receiver)[("busy", pool)] > 0 else None), 10,
                       f"the burst's first call in the {pool} pool")
    seen = None
    while time.monotonic() < first + 0.8 * D:
        now = pools(receiver)
        seen = (now[("busy", pool)], now[("waiting", pool)])
        if seen == (CAP, N - CAP):
            break
        time.sleep(0.05)
    assert seen == (CAP, N - CAP)
    for thread in burst:
        thread.join()
    assert statuses == [200] * N
    after = pools(receiver)
    assert (after[("busy", pool)], after[("waiting", pool)]) == (0, 0)  # nothing left holding the pool
