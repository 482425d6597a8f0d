"""The three services' counters tell the same story as what the sender saw, errors included."""

from __future__ import annotations

import json

import pytest

from tests.conftest import scrape, value
from tools.processes import sender_once


@pytest.mark.parametrize("mode", ["async", "threaded"])
def test_sender_receiver_and_upstream_count_the_same_requests(start, tmp_path, mode):
    upstream = start("upstream", UPSTREAM_DELAY="0.05", UPSTREAM_ERROR_RATE="0.2", LOG_LEVEL="warning")
    receiver = start("receiver", RECEIVER_MODE=mode, UPSTREAM_URL=upstream.url, LOG_LEVEL="warning")
    out = tmp_path / "rate.json"
    sender_once(receiver.url, timeout=60, args=("--json", str(out)), SENDER_RATE="100", SENDER_DURATION="4",
                LOG_LEVEL="warning")
    target = json.loads(out.read_text())["targets"][0]
    seen = target["answered"]  # by status, as the sender saw them
    assert target["sent"] == 400 and target["dropped"] == 0 and sum(seen.values()) == 400, target["answered"]
    assert set(seen) == {"200", "502"} and 40 <= seen["502"] <= 120, seen  # about a fifth failed upstream

    received = scrape(receiver.metrics_url)
    served = scrape(upstream.metrics_url)
    for status in ("200", "502"):
        assert value(received, "receiver_http_requests_total", mode=mode, route="/tasks/{name}", status=status) \
            == seen[status], status
    # upstream answered every call the receiver made: its 500s are the receiver's 502s
    assert value(served, "upstream_http_requests_total", route="/work", status="200", caller=mode) == seen["200"]
    assert value(served, "upstream_http_requests_total", route="/work", status="500", caller=mode) == seen["502"]
    client = "aiohttp" if mode == "async" else "requests"
    # each upstream call by outcome: the errors are upstream's 500s
    assert value(received, "receiver_upstream_call_duration_seconds_count", client=client, outcome="ok") == seen["200"]
    assert value(received, "receiver_upstream_call_duration_seconds_count", client=client, outcome="error") \
        == seen["502"]
