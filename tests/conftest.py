"""Fixtures that start the real services as processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tools.processes import ROOT, Service, free_port, get, wait_ok

pytest_plugins = ["tests.markers"]  # marks process and compose tests (make check leaves them out)
T = TypeVar("T")

# Set by .ci/run: a check that cannot run here (a missing tool) fails instead of skipping.
STRICT = os.environ.get("LAB_STRICT") == "1"


def run_service(service: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m <service>` with env on free ports, to its end (a bad setting stops it at once)."""
    ports = {"PORT": str(free_port()), "METRICS_PORT": str(free_port())}
    return subprocess.run([sys.executable, "-m", service], cwd=ROOT, env={**os.environ, **ports, **env},
                          capture_output=True, text=True, timeout=30)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus)"
        if STRICT:
            pytest.fail(f"{message}; LAB_STRICT=1 makes this a failure")
        pytest.skip(message)
    return path


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """check()'s first answer that is not None or False, polled every `interval` s; fails after `timeout` s.

    The one way the tests wait for a state (never a fixed sleep): what is waited for is named.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)


# The longest test files first (by --durations=0), the rest in their order. `make test` spreads
# files over its workers in collection order (--dist loadfile --no-loadscope-reorder), so each
# worker starts on a long one and they finish together: longest first, the classic rule for
# spreading jobs over machines.
LONGEST_FIRST = ("tests/test_compose.py", "tests/test_faults.py", "tests/test_bad_input.py",
                 "tests/test_workers.py", "tests/test_prometheus_local.py", "tests/test_http.py",
                 "tests/test_modes.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a /metrics text, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str, timeout: float = 5.0) -> Samples:
    """Every sample of a /metrics page."""
    status, body = get(url, timeout=timeout)
    assert status == 200, f"{url} answered {status}"
    return samples(body.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 if it does not exist yet (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def start(tmp_path) -> Iterator[Callable[..., Service]]:
    """start(module, **env) -> a healthy Service; all are stopped when the test ends."""
    started: list[Service] = []

    def _start(module: str, **env: str) -> Service:
        service = Service(module, env, tmp_path / f"{module}-{len(started)}.log")
        started.append(service)
        return service.start().wait_healthy()

    yield _start
    for service in reversed(started):
        service.stop()


@pytest.fixture
def upstream(start) -> Service:
    return start("upstream")


@pytest.fixture
def receiver_for(start, upstream) -> Callable[..., Service]:
    """receiver_for(mode, **env) -> a healthy receiver calling this test's upstream."""

    def _receiver(mode: str, **env: str) -> Service:
        return start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, **env)

    return _receiver


@pytest.fixture
def prometheus_for(tmp_path):
    """prometheus_for({"sender": port, ...}) -> URL of a Prometheus scraping those ports (jobs not named: none)."""
    binary = require_tool("prometheus")
    processes = []

    def _start(metrics_ports: dict[str, int]) -> str:
        config = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in metrics_ports]
        for job in config["scrape_configs"]:  # the lab's own config, aimed at loopback
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_ports[job['job_name']]}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log_path = tmp_path / "prometheus.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_ok(f"{url}/-/ready", process, log_path)
        return url

    yield _start
    for process in processes:
        process.terminate()
        process.wait(10)


@pytest.fixture
def scraped_lab(start, prometheus_for, tmp_path) -> Iterator[Callable[[str], str]]:
    """scraped_lab(mode) -> the URL of a Prometheus scraping upstream (D = 0.2 s), a receiver in
    that mode and a sender bursting 3 requests every second (60 bursts at most)."""
    senders: list[Service] = []

    def _lab(mode: str) -> str:
        upstream = start("upstream", UPSTREAM_DELAY="0.2")
        receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url)
        sender = Service("sender", {"RECEIVER_URL": receiver.url, "SENDER_CONCURRENCY": "3", "SENDER_INTERVAL": "1",
                                    "SENDER_BURSTS": "60"}, tmp_path / "sender.log").start()
        senders.append(sender)
        return prometheus_for({"sender": sender.metrics_port, "receiver": receiver.metrics_port,
                               "upstream": upstream.metrics_port})

    yield _lab
    for sender in senders:
        sender.stop()
