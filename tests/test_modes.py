"""Each mode against the model: a burst of N=4 with D=0.5 s through real processes."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from prometheus_client.utils import floatToGoString

from lab import model
from lab.metrics import BUCKETS, PROBE_INTERVAL
from sender.burst import Burst, run_burst
from tests.conftest import Samples, eventually, scrape, value
from tools.processes import Service, get

N, D = 4, 0.5
# Measured times may exceed the model by 20% plus a small constant (startup of a burst,
# loopback round trips, logging); they may not come in much under it.
RELATIVE, CONSTANT = 0.20, 0.15

CASES = [
    pytest.param("sync", {}, id="sync"),
    pytest.param("async", {}, id="async"),
    pytest.param("mixed", {}, id="mixed"),
    pytest.param("threaded", {}, id="threaded"),
    pytest.param("async", {"RECEIVER_POOL_LIMIT": "2"}, id="async-L2"),
    pytest.param("mixed", {"RECEIVER_POOL_LIMIT": "2"}, id="mixed-L2"),
    pytest.param("mixed", {"RECEIVER_POOL_LIMIT": "1"}, id="mixed-L1"),
    pytest.param("threaded", {"RECEIVER_THREADS": "2"}, id="threaded-T2"),
    pytest.param("def", {}, id="def"),
    pytest.param("def", {"RECEIVER_THREADPOOL_TOKENS": "2"}, id="def-K2"),
    # The client libraries (RECEIVER_ASYNC_CLIENT, RECEIVER_SYNC_CLIENT) change no timeline:
    # a blocking call blocks, whoever makes it, and httpx.AsyncClient's L caps as aiohttp's does.
    pytest.param("sync", {"RECEIVER_SYNC_CLIENT": "httpx"}, id="sync-httpx"),
    pytest.param("async", {"RECEIVER_ASYNC_CLIENT": "httpx"}, id="async-httpx"),
    pytest.param("async", {"RECEIVER_ASYNC_CLIENT": "httpx", "RECEIVER_POOL_LIMIT": "2"}, id="async-httpx-L2"),
    pytest.param("mixed", {"RECEIVER_ASYNC_CLIENT": "httpx", "RECEIVER_SYNC_CLIENT": "httpx"}, id="mixed-httpx"),
    pytest.param("threaded", {"RECEIVER_SYNC_CLIENT": "httpx"}, id="threaded-httpx"),
    pytest.param("def", {"RECEIVER_SYNC_CLIENT": "httpx"}, id="def-httpx"),
]


def client_labels(env: dict[str, str]) -> tuple[str, str]:
    """The `client` label of the async and the blocking call with these settings."""
    return ("httpx.AsyncClient" if env.get("RECEIVER_ASYNC_CLIENT") == "httpx" else "aiohttp",
            "httpx.Client" if env.get("RECEIVER_SYNC_CLIENT") == "httpx" else "requests")


# The pool each mode's calls wait for, and its cap: (pool, cap) from the receiver's caps.
POOLS = {
    "sync": lambda caps: (None, 0),
    "async": lambda caps: ("aiohttp", caps.pool_limit),
    "mixed": lambda caps: ("aiohttp", caps.pool_limit),
    "threaded": lambda caps: ("threads", caps.threads),
    "def": lambda caps: ("anyio", caps.tokens),
}


# Half a blocking call: a mode that blocks stalls the loop for D at every call; one that does
# not may still see the loop wait a tenth of a second for the GIL on a loaded machine (40
# threads running requests beside it), but never half a call.
STALL = D / 2


def stalls_over(samples: Samples, seconds: float) -> float:
    """How many of the loop probe's wake-ups came more than `seconds` late (from its histogram's buckets)."""
    bound = next(b for b in BUCKETS if b >= seconds)
    total = value(samples, "receiver_event_loop_lag_seconds_count")
    return total - value(samples, "receiver_event_loop_lag_seconds_bucket", le=floatToGoString(bound))


def caps_of(receiver: Service) -> model.Caps:
    return model.Caps.from_info(json.loads(get(f"{receiver.url}/info")[1]))


def burst(receiver: Service, n: int = N, delay: float = D) -> Burst:
    async def _run() -> Burst:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            return await run_burst(session, receiver.url, n, delay)

    return asyncio.run(_run())


def receiver_events(log: str) -> list[tuple[str, str]]:
    """("Received" | "Send", task name) for each of the receiver's seed-style lines, in order."""
    return re.findall(r" - (Received|Send) (task\d+) (?:Request!!|response)", log)


def assert_close(measured: float, predicted: float, what: str, latest: float | None = None) -> None:
    """measured within the tolerances of predicted, or of anywhere up to latest (a race's other end)."""
    late = predicted if latest is None else latest
    assert predicted * (1 - RELATIVE) - CONSTANT <= measured <= late * (1 + RELATIVE) + CONSTANT, (
        f"{what}: measured {measured:.3f}s, model {predicted:.3f}s" + (f" to {late:.3f}s" if late != predicted else "")
    )


@pytest.mark.parametrize("mode, env", CASES)
def test_burst_matches_the_model(mode, env, upstream, receiver_for):
    receiver = receiver_for(mode, **env)
    caps = caps_of(receiver)
    before = scrape(receiver.metrics_url)

    result = burst(receiver)
    # until the probe has woken since the last stall (its due time is fresh), so its lag is recorded
    eventually(lambda: value(scrape(receiver.metrics_url), "receiver_event_loop_blocked_seconds") < PROBE_INTERVAL,
               5, "the loop probe awake after the burst")

    assert [r.status for r in result.results] == [200] * N
    predicted = model.completion_times(mode, N, D, caps)
    # mixed with L < N: a waiting call may resume before or after the handlers that came back
    # with the one that freed its connection (a race): anywhere between the two ends
    latest = model.mixed_late(N, D, caps) if mode == "mixed" else predicted
    measured = sorted(r.seconds for r in result.results)
    for k, (m, p, late) in enumerate(zip(measured, predicted, latest), start=1):
        assert_close(m, p, f"{mode} {env} answer {k}", late)
    assert_close(result.makespan, predicted[-1], f"{mode} {env} makespan", latest[-1])

    # Concurrency as upstream saw it: 1 in sync, N in async (up to the caps).
    upstream_metrics = scrape(upstream.metrics_url)
    assert value(upstream_metrics, "upstream_http_requests_in_flight_peak", caller=mode) == (
        model.upstream_concurrency(mode, N, caps)
    )
    assert value(upstream_metrics, "upstream_http_requests_total", route="/work", status="200", caller=mode) == (
        N * model.UPSTREAM_CALLS[mode]
    )

    # The receiver's log in the seed's order.
    events = receiver_events(receiver.log())
    assert len(events) == 2 * N
    if mode == "sync":
        # task k+1 is only received after task k's response has gone out
        assert [kind for kind, _ in events] == ["Received", "Send"] * N
        assert all(events[i][1] == events[i + 1][1] for i in range(0, 2 * N, 2))
    elif mode == "def":
        # The endpoint, its log line included, runs only once it holds one of anyio's K tokens:
        # at most K received and not yet answered, and the first min(N, K) received at once.
        kinds = [kind for kind, _ in events]
        first = min(N, caps.tokens)
        assert kinds[:first] == ["Received"] * first, kinds
        assert max(kinds[:i].count("Received") - kinds[:i].count("Send") for i in range(2 * N + 1)) == first, kinds
    else:
        # all received at once, before any response
        assert [kind for kind, _ in events] == ["Received"] * N + ["Send"] * N

    # Event-loop lag: the loop stalls for every blocking call, and only then.
    after = scrape(receiver.metrics_url)
    lag = value(after, "receiver_event_loop_lag_seconds_sum") - value(before, "receiver_event_loop_lag_seconds_sum")
    blocked = model.blocked_seconds(mode, N, D)
    if blocked:
        assert lag >= 0.7 * blocked, f"{mode}: the loop stalled only {lag:.3f}s of {blocked:.3f}s"
    else:
        # Not one stall of half a blocking call (a blocking call of D would be one of about D).
        # The sum of all lateness is not the measure here: on 2 cores shared with other tests,
        # every wake-up comes a few ms late, and those add up.
        stalls = stalls_over(after, STALL) - stalls_over(before, STALL)
        assert stalls == 0, f"{mode}: {stalls:g} stall(s) over {STALL:g} s ({lag:.3f}s in all) though nothing blocks it"

    # What a scrape after the burst still sees, though it is over: the peaks of the last few
    # seconds (lab.metrics.WindowMax), which a dashboard reads instead of the values now.
    assert value(after, "receiver_http_requests_in_flight_peak") == (1 if mode == "sync" else N)
    blocked_peak = value(after, "receiver_event_loop_blocked_peak_seconds")
    if blocked:  # the probe was kept waiting for a whole blocking call at least
        assert blocked_peak >= D - PROBE_INTERVAL, f"{mode}: blocked peak {blocked_peak:.3f}s"
    else:
        assert blocked_peak < STALL, f"{mode}: blocked peak {blocked_peak:.3f}s though nothing blocks it"
    pool, cap = POOLS[mode](caps)
    if pool == "aiohttp" and env.get("RECEIVER_ASYNC_CLIENT") == "httpx":
        pool = "httpx"  # httpx.AsyncClient's connections, counted as its calls in flight
    if pool:  # the most calls in the mode's pool at once, and waiting for it, whatever the scrape's moment
        at_once = min(N, cap) if cap else N
        peaks = {kind: value(after, f"receiver_pool_{kind}_peak", pool=pool) for kind in ("busy", "waiting")}
        assert peaks == {"busy": at_once, "waiting": N - at_once}, (mode, env, peaks)

    # The receiver counted the requests under its mode and the route template.
    counted = value(after, "receiver_http_requests_total", mode=mode, route="/tasks/{name}", status="200")
    assert counted == N
    async_client, sync_client = client_labels(env)
    clients = {"sync": [sync_client], "async": [async_client], "mixed": [async_client, sync_client],
               "threaded": [sync_client], "def": [sync_client]}
    for client in clients[mode]:
        assert value(after, "receiver_upstream_call_duration_seconds_count", client=client, outcome="ok") == N


def test_the_seed_experiment_in_small(upstream, receiver_for):
    """Two simultaneous calls: twice the delay with requests, once with aiohttp."""
    sync = burst(receiver_for("sync"), n=2, delay=1.0).makespan
    async_ = burst(receiver_for("async"), n=2, delay=1.0).makespan
    assert_close(sync, 2.0, "sync")
    assert_close(async_, 1.0, "async")
    assert sync > 1.5 * async_


@pytest.mark.parametrize("mode", model.MODES)
def test_one_task_body_serves_every_mode_and_def_mode_gets_a_plain_def(mode):
    # FastAPI runs a plain def endpoint in anyio's thread pool and a coroutine function on the
    # loop: def mode's endpoint must be a plain def, every other mode's the body itself.
    import inspect

    from receiver.app import create_app
    from receiver.settings import Settings

    app = create_app(Settings(receiver_mode=mode, receiver_workers=1))
    endpoint = next(route.endpoint for route in app.routes if getattr(route, "path", None) == "/tasks/{name}")
    assert inspect.iscoroutinefunction(endpoint) == (mode != "def")
    assert endpoint.__name__ == "task"  # the OpenAPI operation keeps its name in every mode


def test_def_mode_refuses_a_body_that_would_wait():
    from receiver.app import run_to_end

    async def answers() -> str:
        return "answered"

    async def waits() -> str:
        await asyncio.sleep(0)
        return "never"

    assert run_to_end(answers()) == "answered"
    with pytest.raises(RuntimeError, match="waited on something in def mode"):
        run_to_end(waits())
