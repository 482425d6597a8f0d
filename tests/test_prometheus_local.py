"""The dashboard against a real Prometheus (Debian's binary), scraping local processes.

No Docker needed: wherever Prometheus is installed, every dashboard query is run for real.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tools.processes import ROOT, Service, free_port, wait_ok
from tests.conftest import require_tool
from tests.dashboard_check import instant, missing_data


@pytest.fixture
def prometheus_for(tmp_path):
    """prometheus_for({"sender": port, ...}) -> URL of a Prometheus scraping those ports."""
    binary = require_tool("prometheus")
    processes = []

    def _start(metrics_ports: dict[str, int]) -> str:
        config = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
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


def test_every_dashboard_query_has_data(start, prometheus_for, tmp_path):
    upstream = start("upstream", UPSTREAM_DELAY="0.2")
    # mixed: both client libraries show in the by-client panel
    receiver = start("receiver", RECEIVER_MODE="mixed", UPSTREAM_URL=upstream.url)
    sender = Service("sender", {"RECEIVER_URL": receiver.url, "SENDER_CONCURRENCY": "3", "SENDER_INTERVAL": "1",
                                "SENDER_BURSTS": "60"}, tmp_path / "sender.log").start()
    try:
        prometheus = prometheus_for({"sender": sender.metrics_port, "receiver": receiver.metrics_port,
                                     "upstream": upstream.metrics_port})
        assert missing_data(prometheus, timeout=45) == []
        mode = instant(prometheus, "max by (mode) (receiver_info)")
        assert [series["metric"]["mode"] for series in mode] == ["mixed"]
        up = {s["metric"]["job"]: s["value"][1] for s in instant(prometheus, "up")}
        assert up == {"sender": "1", "receiver": "1", "upstream": "1"}
    finally:
        sender.stop()
