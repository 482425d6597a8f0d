"""The services' HTTP surfaces: good answers, bad input, upstream failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from lab import SEED_BODY, model
from tests.conftest import scrape, value
from tools.processes import ROOT, free_port, get, sender_once


def test_upstream_work_waits_and_answers_the_seed_body(upstream):
    started = time.monotonic()
    status, body = get(f"{upstream.url}/work?delay=0.3")
    took = time.monotonic() - started
    assert (status, body) == (200, SEED_BODY)
    assert 0.3 <= took < 0.3 * 1.2 + 0.15


def test_upstream_default_delay_and_jitter(start):
    upstream = start("upstream", UPSTREAM_DELAY="0.2", UPSTREAM_JITTER="0.1")
    durations = []
    for _ in range(6):
        started = time.monotonic()
        assert get(f"{upstream.url}/work")[0] == 200
        durations.append(time.monotonic() - started)
    assert all(0.1 <= d < 0.3 * 1.2 + 0.15 for d in durations), durations
    assert json.loads(get(f"{upstream.url}/info")[1]) == {
        "delay": 0.2, "jitter": 0.1, "error_rate": 0.0, "max_delay": 120.0
    }


@pytest.mark.parametrize(
    "path, words",
    [
        ("/work?delay=-1", "between 0 and 120 seconds, got '-1'"),
        ("/work?delay=abc", "a number of seconds, got 'abc'"),
        ("/work?delay=121", "between 0 and 120 seconds, got '121'"),
        ("/work?delay=nan", "between 0 and 120 seconds, got 'nan'"),
        ("/work?delay=inf", "between 0 and 120 seconds, got 'inf'"),
        ("/delay/abc", "a number of seconds, got 'abc'"),
        ("/delay/500", "between 0 and 120 seconds, got '500'"),
    ],
)
def test_upstream_rejects_bad_delays(upstream, path, words):
    status, body = get(upstream.url + path)
    assert status == 400
    assert words in json.loads(body)["error"]


def test_upstream_unknown_route_is_counted_without_its_path(upstream):
    assert get(f"{upstream.url}/no/such/path")[0] == 404
    samples = scrape(upstream.metrics_url)
    assert value(samples, "upstream_http_requests_total", route="unmatched", status="404", caller="other") == 1


def test_upstream_labels_callers_by_mode_from_a_closed_set(upstream, receiver_for):
    receiver = receiver_for("threaded")
    assert get(f"{receiver.url}/tasks/task1?delay=0")[0] == 200
    for header in ("sync", "nonsense", None):  # a mode, an unknown value, no header
        request = urllib.request.Request(f"{upstream.url}/work?delay=0",
                                         headers={"X-Lab-Mode": header} if header else {})
        assert urllib.request.urlopen(request, timeout=5).status == 200
    samples = scrape(upstream.metrics_url)
    callers = {dict(labels)["caller"]: v for (name, labels), v in samples.items()
               if name == "upstream_http_requests_total"}
    assert callers == {"threaded": 1, "sync": 1, "other": 2}
    # upstream's own clock for each caller's calls, to set beside the receiver's client's
    timed = {dict(labels)["caller"]: v for (name, labels), v in samples.items()
             if name == "upstream_http_request_duration_seconds_count" and dict(labels)["route"] == "/work"}
    assert timed == {"threaded": 1, "sync": 1, "other": 2}
    in_flight = {dict(labels)["caller"] for (name, labels), _ in samples.items()
                 if name == "upstream_http_requests_in_flight"}
    assert in_flight == {*model.MODES, "other"}  # every caller's series, from the start


def test_httpbin_compatible_routes(upstream):
    status, body = get(f"{upstream.url}/get?x=1")
    echo = json.loads(body)
    assert status == 200 and echo["args"] == {"x": "1"} and echo["url"].endswith("/get?x=1")
    started = time.monotonic()
    status, body = get(f"{upstream.url}/delay/0.2")
    assert status == 200 and time.monotonic() - started >= 0.2 and "headers" in json.loads(body)


def test_the_seed_hello_world_runs_against_upstream(upstream):
    done = subprocess.run(
        [sys.executable, "examples/hello.py"],
        cwd=ROOT, env={**os.environ, "UPSTREAM_URL": upstream.url}, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.split("\n", 1)
    assert status == "200" and json.loads(body)["url"] == f"{upstream.url}/get"


@pytest.mark.parametrize(
    "path, status",
    [
        ("/tasks/task1?delay=-1", 422),
        ("/tasks/task1?delay=abc", 422),
        ("/tasks/task1?delay=nan", 422),
        ("/tasks/task1?delay=301", 422),
        ("/tasks/bad%20name", 422),
        ("/tasks/" + "x" * 65, 422),
        ("/tasks/task1?delay=200", 422),  # above upstream's max (120), which the receiver read at start
        ("/tasks", 404),
    ],
)
def test_receiver_rejects_bad_input(upstream, receiver_for, path, status):
    receiver = receiver_for("async")
    got, body = get(receiver.url + path)
    assert got == status, body


@pytest.mark.parametrize("mode", model.MODES)
def test_upstream_failures_become_502(start, mode):
    upstream = start("upstream", UPSTREAM_ERROR_RATE="1", UPSTREAM_DELAY="0")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url)
    status, body = get(f"{receiver.url}/tasks/task1")
    assert status == 502 and json.loads(body) == {"error": "upstream answered 500"}
    samples = scrape(receiver.metrics_url)
    client = "aiohttp" if mode in ("async", "mixed") else "requests"
    assert value(samples, "receiver_upstream_call_duration_seconds_count", client=client, outcome="error") == 1
    assert value(samples, "receiver_http_requests_total", mode=mode, route="/tasks/{name}", status="502") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_slow_upstream_becomes_504_after_the_timeout(upstream, receiver_for, mode):
    receiver = receiver_for(mode, RECEIVER_UPSTREAM_TIMEOUT="0.3")
    started = time.monotonic()
    status, body = get(f"{receiver.url}/tasks/task1?delay=2")
    assert status == 504 and "within 0.3s" in json.loads(body)["error"]
    assert time.monotonic() - started < 1.5
    samples = scrape(receiver.metrics_url)
    client = "requests" if mode == "sync" else "aiohttp"
    assert value(samples, "receiver_upstream_call_duration_seconds_count", client=client, outcome="timeout") == 1


def test_unreachable_upstream_becomes_502(start):
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=f"http://127.0.0.1:{free_port()}")
    status, body = get(f"{receiver.url}/tasks/task1")
    assert status == 502 and "upstream call failed" in json.loads(body)["error"]
    assert json.loads(get(f"{receiver.url}/info")[1])["upstream"] is None


def test_sender_once_prints_the_timeline_and_fails_on_errors(start):
    upstream = start("upstream", UPSTREAM_DELAY="0.2")
    receiver = start("receiver", RECEIVER_MODE="sync", UPSTREAM_URL=upstream.url)
    done = sender_once(receiver.url, SENDER_CONCURRENCY="3")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("task1", "task2", "task3"):
        for line in (f"--- {name} -----", f"--- {name} Send!!", f"--- {name} status = 200",
                     f'--- {name}{{"res":{{"message":"success"}}}}'):
            assert f" - {line}\n" in done.stdout
    assert "mode=sync predicted=0.600s [N·D, D=0.2s] failed=0" in done.stdout
    rows = re.findall(r"^task\d\s+\+0\.000s\s+\+(\d+\.\d{3})s\s+200$", done.stdout, re.MULTILINE)
    assert len(rows) == 3 and float(rows[-1]) >= 0.6  # the timeline, last answer after N·D

    failing = start("upstream", UPSTREAM_ERROR_RATE="1", UPSTREAM_DELAY="0")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=failing.url)
    done = sender_once(receiver.url, SENDER_CONCURRENCY="3")
    assert done.returncode == 1
    assert "--- task1 status = 502" in done.stdout and "failed=3" in done.stdout
