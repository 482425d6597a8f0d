"""Every service's /metrics: parses, holds the lab's series, passes promtool, never stalls."""

from __future__ import annotations

import asyncio
import bisect
import re
import subprocess
import threading
import time

import pytest

from lab.metrics import BUCKETS
from lab.settings import MAX_SECONDS
from tests.conftest import Samples, eventually, require_tool, samples, scrape, value
from tools.processes import Service, free_port, get

UPSTREAM_SERIES = [
    "upstream_http_requests_total",
    "upstream_http_request_duration_seconds_bucket",
    "upstream_http_requests_in_flight",
    "upstream_http_requests_in_flight_peak",
    "upstream_event_loop_lag_seconds_bucket",
    "upstream_event_loop_blocked_seconds",
    "upstream_event_loop_blocked_peak_seconds",
]
RECEIVER_SERIES = [
    "receiver_http_requests_total",
    "receiver_http_request_duration_seconds_bucket",
    "receiver_http_requests_in_flight",
    "receiver_http_requests_in_flight_peak",
    "receiver_upstream_call_duration_seconds_bucket",
    "receiver_event_loop_lag_seconds_bucket",
    "receiver_event_loop_blocked_seconds",
    "receiver_event_loop_blocked_peak_seconds",
    "receiver_pool_busy_peak",
    "receiver_pool_waiting_peak",
    "receiver_info",
]
SENDER_SERIES = [
    "sender_requests_total",
    "sender_requests_sent_total",
    "sender_requests_dropped_total",
    "sender_requests_late_total",
    "sender_request_duration_seconds_bucket",
    "sender_offered_requests_per_second",
    "sender_achieved_requests_per_second",
    "sender_bursts_total",
    "sender_burst_size",
    "sender_burst_makespan_seconds",
    "sender_burst_predicted_makespan_seconds",
    "sender_event_loop_lag_seconds_bucket",
    "sender_event_loop_blocked_seconds",
    "sender_event_loop_blocked_peak_seconds",
]


def running_sender(start_service: Service) -> str:
    """Wait until a sender process has finished a burst; its metrics text."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            status, body = get(start_service.metrics_url, timeout=1)
            bursts = re.search(r'^sender_bursts_total\{mode="async"\} (\S+)$', body.decode(), re.MULTILINE)
            if status == 200 and bursts and float(bursts[1]) >= 1:
                return body.decode()
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the sender finished no burst:\n{start_service.log()}")


@pytest.fixture
def lab(upstream, receiver_for, tmp_path):
    """upstream, an async receiver, and a sender doing bursts of 3 (bounded: 3 bursts)."""
    receiver = receiver_for("async")
    sender = Service(
        "sender",
        {
            "RECEIVER_URL": receiver.url,
            "SENDER_CONCURRENCY": "3",
            "SENDER_DELAY": "0.2",
            "SENDER_INTERVAL": "2",
            "SENDER_BURSTS": "3",
        },
        tmp_path / "sender.log",
    ).start()
    try:
        sender_text = running_sender(sender)
        yield {"upstream": upstream, "receiver": receiver, "sender": sender, "sender_text": sender_text}
    finally:
        sender.stop()


def metrics_text(lab: dict, name: str) -> str:
    return lab["sender_text"] if name == "sender" else get(lab[name].metrics_url)[1].decode()


@pytest.mark.parametrize(
    "name, series", [("upstream", UPSTREAM_SERIES), ("receiver", RECEIVER_SERIES), ("sender", SENDER_SERIES)]
)
def test_metrics_hold_the_lab_series(lab, name, series):
    text = metrics_text(lab, name)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert not [s for s in series if s not in names], f"{name} lacks series"
    assert "_created" not in text
    assert f'le="{BUCKETS[-1]}"' in text and BUCKETS[-1] > MAX_SECONDS


def test_metric_values_tell_the_story(lab):
    receiver = scrape(lab["receiver"].metrics_url)
    assert value(receiver, "receiver_info", mode="async", threads="40", threadpool_tokens="40", pool_limit="100",
                 requests_pool="10", async_client="aiohttp", sync_client="requests", server="uvicorn", workers="1",
                 accept="one process", upstream_url=lab["upstream"].url, upstream_timeout="130.0", cpu_ms="0.0",
                 cpu_processes="0") == 1
    assert value(receiver, "receiver_http_requests_total", mode="async", route="/tasks/{name}", status="200") >= 3
    sender = samples(lab["sender_text"])
    # Every sender series but the loop probe's carries the receiver's mode, from its /info.
    assert value(sender, "sender_burst_size", mode="async") == 3
    assert value(sender, "sender_burst_predicted_makespan_seconds", mode="async") == pytest.approx(0.2)
    assert 0.2 <= value(sender, "sender_burst_makespan_seconds", mode="async") < 0.2 * 1.2 + 0.15
    bursts = value(sender, "sender_bursts_total", mode="async")
    assert value(sender, "sender_requests_sent_total", mode="async") == 3 * bursts
    assert value(sender, "sender_requests_total", mode="async", status="200") >= 3 * (bursts - 1)
    assert value(sender, "sender_offered_requests_per_second", mode="async") == 3 / 2  # N / SENDER_INTERVAL
    assert value(sender, "sender_requests_dropped_total", mode="async") == 0  # bursts never drop
    modes = {labels for name, labels in sender if name.startswith("sender_") and "event_loop" not in name}
    assert all(dict(labels).get("mode") == "async" for labels in modes), modes


@pytest.mark.parametrize("name", ["upstream", "receiver", "sender"])
def test_promtool_finds_nothing(lab, name):
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=metrics_text(lab, name), capture_output=True, text=True
    )
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr
    )


def test_metrics_answer_while_sync_mode_blocks_the_loop(upstream, receiver_for):
    receiver = receiver_for("sync")
    calls = [threading.Thread(target=get, args=(f"{receiver.url}/tasks/task{i}?delay=1", 10)) for i in (1, 2)]
    for call in calls:
        call.start()

    def scrape_while_blocked() -> tuple[Samples, float] | None:
        """A scrape, and how long it took, once the loop sits in a blocking requests call."""
        started = time.monotonic()
        found = scrape(receiver.metrics_url, timeout=1.0)
        took = time.monotonic() - started
        return (found, took) if value(found, "receiver_event_loop_blocked_seconds") > 0.2 else None

    samples, took = eventually(scrape_while_blocked, 5, "a scrape while the loop is blocked")
    for call in calls:
        call.join()
    assert took < 1.0
    assert value(samples, "receiver_http_requests_in_flight") == 1


def quantile_read(q: float, observed: float) -> float:
    """What histogram_quantile(q, ...) reads when every observation is `observed`: Prometheus
    interpolates linearly inside the bucket that holds the rank (promql's bucketQuantile)."""
    i = bisect.bisect_left(BUCKETS, observed)  # the bucket (BUCKETS[i-1], BUCKETS[i]] holds it
    lower = BUCKETS[i - 1] if i else 0.0
    return lower + (BUCKETS[i] - lower) * q


def test_a_call_of_any_delay_reads_true_at_p50_and_p99():
    # Every delay from 0.1 s to 120 s (a dense sweep), as the call itself or with a few ms of
    # overhead: the dashboard's p50 and p99 read within 5% of it.
    delays = [0.1 * 1200 ** (k / 999) for k in range(1000)]
    for delay in delays:
        for observed in (delay, delay * 1.002 + 0.003):
            for q in (0.5, 0.99):
                assert abs(quantile_read(q, observed) / observed - 1) <= 0.05, (delay, observed, q)
    assert len(BUCKETS) < 200  # a fixed, bounded number of series per histogram


def test_in_flight_counts_the_work_not_health_checks_or_info(upstream, receiver_for):
    receiver = receiver_for("async")
    for _ in range(3):
        assert get(f"{receiver.url}/healthz")[0] == get(f"{receiver.url}/info")[0] == 200
    probes_only = scrape(receiver.metrics_url)
    assert value(probes_only, "receiver_http_requests_in_flight_peak") == 0
    assert value(probes_only, "receiver_http_requests_total", mode="async", route="/healthz", status="200") >= 3
    upstream_seen = scrape(upstream.metrics_url)  # the receiver's /info asked upstream's /info three times
    assert not any(v for (name, _), v in upstream_seen.items() if name == "upstream_http_requests_in_flight_peak")
    assert get(f"{receiver.url}/tasks/task1?delay=0")[0] == 200
    assert value(scrape(receiver.metrics_url), "receiver_http_requests_in_flight_peak") == 1
    assert value(scrape(upstream.metrics_url), "upstream_http_requests_in_flight_peak", caller="async") == 1


def test_a_burst_that_reaches_no_receiver_is_a_failed_burst_not_a_makespan(tmp_path):
    # A receiver restarting (here: none at all) answers no request: the burst has no makespan.
    sender = Service("sender", {"RECEIVER_URL": f"http://127.0.0.1:{free_port()}", "SENDER_CONCURRENCY": "3",
                                "SENDER_INTERVAL": "60", "SENDER_TIMEOUT": "2"}, tmp_path / "sender.log").start()
    try:
        def failed() -> Samples | None:
            try:
                found = scrape(sender.metrics_url, timeout=1)
            except OSError:
                return None
            return found if value(found, "sender_bursts_failed_total", mode="unknown") == 1 else None

        seen = eventually(failed, 20, "the sender counting its first burst as failed")
    finally:
        sender.stop()
    assert not [labels for name, labels in seen if name == "sender_burst_makespan_seconds"]
    assert value(seen, "sender_bursts_total", mode="unknown") == 1



async def asgi_get(app, target: str) -> int:
    """GET target from an ASGI app in this process, as a server would hand it the request: its status."""
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("test", 80)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return next(message["status"] for message in sent if message["type"] == "http.response.start")


def test_two_receiver_apps_in_one_process_keep_their_metrics_apart(upstream):
    # Each app builds its own metrics in a registry of its own (what /metrics serves), none in
    # prometheus-client's default registry: two apps, even of the same settings, never collide.
    from prometheus_client import REGISTRY, generate_latest

    from receiver.app import create_app
    from receiver.settings import Settings

    on = Settings(receiver_mode="async", upstream_url=upstream.url, receiver_workers=1)
    off = Settings(receiver_mode="def", upstream_url=upstream.url, receiver_workers=1, receiver_metrics=False)
    apps = [create_app(on), create_app(off), create_app(on)]

    async def serve_both() -> list[int]:
        async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
            return [await asgi_get(apps[0], "/tasks/task1?delay=0"),
                    await asgi_get(apps[1], "/tasks/task2?delay=0"),  # def mode's endpoint, in anyio's threads
                    await asgi_get(apps[1], "/healthz")]

    assert asyncio.run(asyncio.wait_for(serve_both(), 20)) == [200, 200, 200]
    read = [samples(generate_latest(app.state.metrics.registry).decode()) for app in apps]
    assert value(read[0], "receiver_http_requests_total", mode="async", route="/tasks/{name}", status="200") == 1
    assert value(read[0], "receiver_upstream_call_duration_seconds_count", client="aiohttp", outcome="ok") == 1
    assert value(read[0], "receiver_info", **{k: str(v) for k, v in on.info().items()}) == 1
    assert value(read[2], "receiver_http_requests_total", mode="async", route="/tasks/{name}", status="200") == 0
    assert not [name for name, _ in read[1] if name.startswith(("receiver_http_", "receiver_upstream_call"))]
    assert value(read[1], "receiver_info", **{k: str(v) for k, v in off.info().items()}) == 1
    assert all("process_cpu_seconds_total" in {name for name, _ in r} for r in read)  # as the default registry had
    assert not [name for name in REGISTRY._names_to_collectors if name.startswith("receiver_")]
