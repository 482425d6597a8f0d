"""RECEIVER_MAX_IN_FLIGHT: beyond it the receiver answers 503 at once instead of queueing without bound."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from bench.workers import rss_mb
from tests.conftest import scrape, value
from tools.processes import get, sender_once

TASKS = "/tasks/{name}"


def test_a_burst_beyond_the_limit_gets_503s_at_once(start, tmp_path):
    upstream = start("upstream", UPSTREAM_DELAY="1.0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, RECEIVER_MAX_IN_FLIGHT="10",
                     LOG_LEVEL="warning")
    assert json.loads(get(f"{receiver.url}/info")[1])["max_in_flight"] == 10
    out = tmp_path / "burst.json"
    done = sender_once(receiver.url, timeout=60, args=("--json", str(out)), SENDER_CONCURRENCY="30",
                       LOG_LEVEL="warning")
    results = json.loads(out.read_text())["targets"][0]["results"]
    assert len(results) == 30, done.stdout + done.stderr
    ok = [r["seconds"] for r in results if r["status"] == 200]
    shed = [r["seconds"] for r in results if r["status"] == 503]
    assert (len(ok), len(shed)) == (10, 20), results
    assert all(0.9 <= t <= 1.5 for t in ok), ok  # the ten it took: one D, as in async mode
    assert max(shed) < 0.5, shed  # the rest: turned away at once, not after a D in a queue
    metrics = scrape(receiver.metrics_url)
    assert value(metrics, "receiver_http_requests_total", mode="async", route=TASKS, status="503") == 20
    assert value(metrics, "receiver_upstream_call_duration_seconds_count", client="aiohttp", outcome="ok") == 10


def test_a_503_says_why_and_when_to_retry(start):
    upstream = start("upstream", UPSTREAM_DELAY="2.0", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, RECEIVER_MAX_IN_FLIGHT="1",
                     LOG_LEVEL="warning")
    holder = threading.Thread(target=get, args=(f"{receiver.url}/tasks/holder",), kwargs={"timeout": 10})
    holder.start()
    deadline = time.monotonic() + 5
    while value(scrape(receiver.metrics_url), "receiver_http_requests_in_flight") < 1:  # the holder is in
        assert time.monotonic() < deadline, "the first request never got in flight"
        time.sleep(0.05)
    try:
        urllib.request.urlopen(f"{receiver.url}/tasks/second", timeout=5)
        raise AssertionError("the second request was not turned away")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503 and exc.headers["Retry-After"] == "1"
        assert "RECEIVER_MAX_IN_FLIGHT=1" in json.loads(exc.read())["error"]
    assert get(f"{receiver.url}/healthz")[0] == 200  # only /tasks is limited: health checks still pass
    spec = json.loads(get(f"{receiver.url}/openapi.json")[1])
    assert {"502", "503", "504"} <= set(spec["paths"]["/tasks/{name}"]["get"]["responses"])  # clients can know
    holder.join()
    assert get(f"{receiver.url}/tasks/after", timeout=10)[0] == 200  # a free slot again: served


def test_twice_the_capacity_sheds_the_excess_and_memory_stays_bounded(start, tmp_path):
    # async with at most 10 in flight and D = 0.5 s: capacity 20 requests/s; offered 40/s.
    upstream = start("upstream", UPSTREAM_DELAY="0.5", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, RECEIVER_MAX_IN_FLIGHT="10",
                     LOG_LEVEL="warning")
    before = rss_mb(receiver.process.pid)
    out = tmp_path / "rate.json"
    done = sender_once(receiver.url, timeout=60, args=("--json", str(out)), SENDER_RATE="40", SENDER_DURATION="6",
                       SENDER_MAX_IN_FLIGHT="1000", LOG_LEVEL="warning")
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: some answers were errors (the 503s)
    target = json.loads(out.read_text())["targets"][0]
    answered = target["answered"]
    assert target["dropped"] == 0 and target["sent"] == 240  # the sender never held back: every one was sent
    assert set(answered) <= {"200", "503"} and sum(answered.values()) == 240, answered
    share = answered.get("503", 0) / 240
    assert 0.4 <= share <= 0.6, answered  # the excess over capacity: 1 - 20/40
    assert target["latency"]["p99"] is not None
    after = rss_mb(receiver.process.pid)
    assert after < before + 20, (before, after)  # no queue growing in memory
    assert receiver.process.poll() is None  # still up
