"""Bad configuration stops a service before it binds, with one line saying what is wrong."""

from __future__ import annotations

import pytest

from tests.conftest import run_service as run
from tools.processes import free_port, sender_once

CASES = [
    # service, variable, value, words the one line must hold (what is allowed)
    ("receiver", "RECEIVER_MODE", "blocking", ["'sync', 'async', 'mixed', 'threaded' or 'def'"]),
    ("receiver", "RECEIVER_THREADPOOL_TOKENS", "0", ["greater than or equal to 1"]),
    ("receiver", "RECEIVER_THREADS", "0", ["greater than or equal to 1"]),
    ("receiver", "RECEIVER_THREADS", "many", ["valid integer"]),
    ("receiver", "RECEIVER_POOL_LIMIT", "-1", ["greater than or equal to 0"]),
    ("receiver", "RECEIVER_UPSTREAM_TIMEOUT", "0", ["greater than 0"]),
    ("receiver", "RECEIVER_UPSTREAM_TIMEOUT", "nan", ["finite number"]),
    ("receiver", "UPSTREAM_URL", "ftp://example", ["URL scheme should be 'http' or 'https'"]),
    ("receiver", "RECEIVER_MAX_IN_FLIGHT", "-5", ["greater than or equal to 0"]),
    ("receiver", "RECEIVER_ACCEPT", "roundrobin", ["'shared' or 'reuseport'"]),
    ("receiver", "LOOP_BLOCK_THRESHOLD", "-0.1", ["greater than or equal to 0"]),
    ("receiver", "LOOP_CULPRITS_MAX", "0", ["greater than or equal to 1"]),
    ("receiver", "PORT", "70000", ["less than or equal to 65535"]),
    ("upstream", "UPSTREAM_DELAY", "-1", ["greater than or equal to 0"]),
    ("upstream", "UPSTREAM_DELAY", "abc", ["valid number"]),
    ("upstream", "UPSTREAM_DELAY", "1000", ["less than or equal to 300"]),
    ("upstream", "UPSTREAM_JITTER", "-0.5", ["greater than or equal to 0"]),
    ("upstream", "UPSTREAM_ERROR_RATE", "1.5", ["less than or equal to 1"]),
    ("upstream", "UPSTREAM_MAX_DELAY", "0", ["greater than 0"]),
    ("upstream", "PORT", "http", ["valid integer"]),
    ("upstream", "METRICS_PORT", "0", ["greater than or equal to 1"]),
    ("sender", "SENDER_CONCURRENCY", "0", ["greater than or equal to 1"]),
    ("sender", "SENDER_INTERVAL", "0", ["greater than 0"]),
    ("sender", "SENDER_DELAY", "soon", ["valid number"]),
    ("sender", "SENDER_BURSTS", "-2", ["greater than or equal to 0"]),
    ("sender", "RECEIVER_URL", "receiver", ["valid URL"]),
    ("sender", "RECEIVER_URL", "http://127.0.0.1:8000,receiver", ["item 'receiver'", "valid URL"]),
    ("sender", "RECEIVER_URL", ",", ["one http(s) URL, or several separated by commas"]),
    ("sender", "SENDER_RATE", "-1", ["greater than or equal to 0"]),
    ("sender", "SENDER_RATE", "100001", ["less than or equal to 100000"]),
    ("sender", "SENDER_ARRIVALS", "bursty", ["'constant' or 'poisson'"]),
    ("sender", "SENDER_SEED", "lucky", ["valid integer"]),
    ("sender", "SENDER_MAX_IN_FLIGHT", "0", ["greater than or equal to 1"]),
    ("sender", "SENDER_DURATION", "-1", ["greater than or equal to 0"]),
    ("sender", "SENDER_DURATION", "86401", ["less than or equal to 86400"]),
]




@pytest.mark.parametrize("service, variable, bad, allowed", CASES)
def test_bad_value_exits_with_one_line(service, variable, bad, allowed):
    done = run(service, {variable: bad})
    assert done.returncode == 2
    assert done.stdout == ""  # it stopped before logging anything, before binding
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{service}: bad configuration: {variable}={bad!r}: ")
    for words in allowed:
        assert words in lines[0]


def test_checks_across_variables_name_both():
    same = str(free_port())
    done = run("receiver", {"PORT": same, "METRICS_PORT": same})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"receiver: bad configuration: METRICS_PORT={same} is the same as PORT: "
        "the metrics server needs a port of its own"
    )
    done = run("upstream", {"UPSTREAM_DELAY": "10", "UPSTREAM_MAX_DELAY": "5"})
    assert done.returncode == 2
    assert "UPSTREAM_DELAY=10 is above UPSTREAM_MAX_DELAY=5" in done.stderr


def test_sender_once_exits_non_zero_when_the_receiver_is_down():
    done = sender_once(f"http://127.0.0.1:{free_port()}", timeout=30)
    assert done.returncode == 1
    assert "could not read" in done.stdout and "predicted=unknown failed=2" in done.stdout


def test_sender_once_in_open_loop_needs_a_duration():
    done = sender_once(f"http://127.0.0.1:{free_port()}", timeout=30, SENDER_RATE="10")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "sender: bad configuration: SENDER_DURATION=0: --once with SENDER_RATE>0 needs a bounded run, "
        "greater than 0 seconds"
    )
