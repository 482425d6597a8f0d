"""RECEIVER_WORKERS > 1: gunicorn with uvicorn workers, and metrics that stay right across them."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest

from tests.conftest import require_tool, run_service, scrape, value
from tools.processes import Service, get, sender_once

TASKS = "/tasks/{name}"


@pytest.fixture
def workers(start, tmp_path):
    """workers(mode, w, **env) -> a receiver under gunicorn with w workers, and its upstream."""

    def _start(mode: str, count: int, delay: float, **env: str) -> tuple[Service, Service]:
        upstream = start("upstream", UPSTREAM_DELAY=str(delay), LOG_LEVEL="warning")
        receiver = start("receiver", RECEIVER_MODE=mode, RECEIVER_WORKERS=str(count), UPSTREAM_URL=upstream.url,
                         PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), LOG_LEVEL="warning", **env)
        return receiver, upstream

    return _start


def burst(receiver: Service, n: int) -> list[float]:
    """One burst of n from the sender; each request's answer time in seconds."""
    done = sender_once(receiver.url, timeout=120, SENDER_CONCURRENCY=str(n), LOG_LEVEL="info")
    assert done.returncode == 0, done.stdout + done.stderr
    answered = [float(t) for t in re.findall(r"^task\d+\s+\+[\d.]+s\s+\+([\d.]+)s\s+200$", done.stdout, re.MULTILINE)]
    assert len(answered) == n, done.stdout
    return answered


def test_workers_need_a_metrics_directory():
    done = run_service("receiver", {"RECEIVER_WORKERS": "4", "PROMETHEUS_MULTIPROC_DIR": ""})
    assert done.returncode == 2
    assert "RECEIVER_WORKERS=4 needs PROMETHEUS_MULTIPROC_DIR" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_master_serves_every_workers_counts(workers, tmp_path):
    receiver, _ = workers("async", 4, 0.2)
    info = json.loads(get(f"{receiver.url}/info")[1])
    assert (info["server"], info["workers"]) == ("gunicorn", 4)
    before = scrape(receiver.metrics_url)
    assert value(before, "receiver_info", mode="async", server="gunicorn", workers="4", threads="40",
                 pool_limit="100", requests_pool="10", upstream_url=info["upstream_url"],
                 upstream_timeout="130.0") == 1.0

    assert len(burst(receiver, 200)) == 200
    after = scrape(receiver.metrics_url)
    counted = (value(after, "receiver_http_requests_total", mode="async", route=TASKS, status="200")
               - value(before, "receiver_http_requests_total", mode="async", route=TASKS, status="200"))
    assert counted == 200  # every worker's requests, each counted once
    calls = value(after, "receiver_upstream_call_duration_seconds_count", client="aiohttp", outcome="ok")
    assert calls == 200
    writers = {path.name.rsplit("_", 1)[-1] for path in (tmp_path / "metrics").glob("counter_*.db")}
    assert len(writers) >= 2  # the burst was spread over more than one worker process

    promtool = require_tool("promtool")
    text = get(receiver.metrics_url)[1].decode()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout + checked.stderr
    assert "_probe_due_" not in text  # the workers' probe times are turned into the blocked gauge


def test_sync_workers_serve_side_by_side_and_metrics_answer_while_all_block(workers):
    receiver, upstream = workers("sync", 4, 1.0)
    result: dict[str, list[float]] = {}
    sending = threading.Thread(target=lambda: result.setdefault("answers", burst(receiver, 8)))
    sending.start()
    deadline = time.monotonic() + 10
    while value(scrape(receiver.metrics_url), "receiver_http_requests_in_flight") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # until the burst is in (the sender takes a moment to start)
    time.sleep(0.4)  # the workers' loops are inside requests calls
    started = time.monotonic()
    during = scrape(receiver.metrics_url, timeout=2)
    assert time.monotonic() - started < 0.5  # the master runs no event loop: it answers at once
    in_flight = value(during, "receiver_http_requests_in_flight")
    blocked = value(during, "receiver_event_loop_blocked_seconds")
    peak = value(scrape(upstream.metrics_url), "upstream_http_requests_in_flight_peak", caller="sync")
    sending.join()

    assert 2 <= in_flight <= 8  # the live sum over workers of what each is holding
    assert blocked > 0.2  # the most overdue worker's loop
    assert peak >= 2  # more than one blocking call at once: impossible with one process
    # One worker would take 8 D. Four take between 2 D (an even spread) and less than 8 D:
    # the kernel hands a burst's connections to whichever worker wakes first, unevenly.
    assert 2.0 - 0.1 <= max(result["answers"]) < 8.0 - 0.5
    after = scrape(receiver.metrics_url)
    assert value(after, "receiver_http_requests_in_flight") == 0
    assert value(after, "receiver_event_loop_blocked_seconds") < 0.5
