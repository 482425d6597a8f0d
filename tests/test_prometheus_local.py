"""The dashboard against a real Prometheus (Debian's binary), scraping local processes.

No Docker needed: wherever Prometheus is installed, every dashboard query is run for real.
"""

from __future__ import annotations

from tools.processes import Service
from tests.dashboard_check import instant, missing_data


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
