"""The dashboard against a real Prometheus (Debian's binary), scraping local processes.

No Docker needed: wherever Prometheus is installed, every dashboard query is run for real.
"""

from __future__ import annotations

import threading
import time

import yaml

from tests.conftest import eventually
from tests.dashboard_check import instant, missing_data, windows
from tools import dashboard
from tools.processes import ROOT, Service, get

WINDOW = float(dashboard.ANNOTATION_WINDOW.removesuffix("s"))
SCRAPE_INTERVAL = float(yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())["global"]["scrape_interval"]
                        .removesuffix("s"))


def test_every_dashboard_query_has_data(scraped_lab):
    prometheus = scraped_lab("mixed")  # mixed: both client libraries show in the by-client panel
    assert missing_data(prometheus, timeout=45) == []
    mode = instant(prometheus, "max by (mode) (receiver_info)")
    assert [series["metric"]["mode"] for series in mode] == ["mixed"]
    up = {s["metric"]["job"]: s["value"][1] for s in instant(prometheus, "up")}
    assert up == {"sender": "1", "receiver": "1", "upstream": "1"}


def scraping(prometheus: str, timeout: float = 60) -> str:
    """prometheus, once it has scraped the receiver (receiver_info is there)."""
    deadline = time.monotonic() + timeout
    while not instant(prometheus, "receiver_info"):
        assert time.monotonic() < deadline, f"no receiver_info in {prometheus} within {timeout:g} s"
        time.sleep(0.5)
    return prometheus


def test_a_mode_switch_is_annotated(start, prometheus_for, tmp_path):
    """The dashboard's annotation query returns the new mode right after a switch, and nothing in between."""
    upstream = start("upstream", UPSTREAM_DELAY="0")
    before = start("receiver", RECEIVER_MODE="sync", UPSTREAM_URL=upstream.url)
    prometheus = scraping(prometheus_for({"receiver": before.metrics_port}))
    # Past the first moments of the first receiver (WINDOW from its first scrape): nothing is new any more.
    eventually(lambda: instant(prometheus, dashboard.MODE_CHANGES) == [], WINDOW + 3,
               "no mode change once the first receiver has been scraped for the window", interval=0.5)
    before.stop()  # the switch: a new receiver process in another mode, where Prometheus scrapes
    after = Service("receiver", {"RECEIVER_MODE": "async", "UPSTREAM_URL": upstream.url}, tmp_path / "after.log",
                    port=before.port, metrics_port=before.metrics_port).start().wait_healthy()
    try:
        marked: list = []
        deadline = time.monotonic() + WINDOW
        while not marked and time.monotonic() < deadline:
            marked = instant(prometheus, dashboard.MODE_CHANGES)
            time.sleep(0.5)
        assert [series["metric"]["mode"] for series in marked] == ["async"]
        # A mark, not a band over the rest of the run: gone within the window (and a scrape or so).
        eventually(lambda: instant(prometheus, dashboard.MODE_CHANGES) == [], WINDOW + 3,
                   "the mark of the switch gone after the window", interval=0.5)
    finally:
        after.stop()


def test_the_culprit_panel_names_requests_within_a_scrape_interval_of_a_sync_burst(start, prometheus_for):
    upstream = start("upstream", UPSTREAM_DELAY="1")
    receiver = start("receiver", RECEIVER_MODE="sync", UPSTREAM_URL=upstream.url)
    prometheus = scraping(prometheus_for({"receiver": receiver.metrics_port}))
    panel = next(p for p in dashboard.build()["panels"] if p["title"] == "What blocked the loop")
    query = windows(panel["targets"][0]["expr"])
    n = 3
    answered_at: list[float] = []

    def ask(i: int) -> None:
        get(f"{receiver.url}/tasks/t{i}", timeout=30)
        answered_at.append(time.monotonic())

    burst = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    began = time.monotonic()
    for thread in burst:
        thread.start()
    named: dict[str, float] = {}
    found_at = None
    while time.monotonic() < began + n + SCRAPE_INTERVAL + 10:
        named = {s["metric"]["culprit"]: float(s["value"][1]) for s in instant(prometheus, query)
                 if float(s["value"][1]) > 0}
        if named:
            found_at = time.monotonic()
            break
        time.sleep(0.2)
    for thread in burst:
        thread.join()
    # the requests call, waiting (a loaded machine may catch a sample of the loop's own tick beside it)
    requests_call = "receiver.clients.call_with_requests → requests.sessions.Session.get · wait"
    assert named and max(named, key=named.__getitem__) == requests_call, named
    # The burst holds the loop n·D = 3 s; the panel names the culprit by then, give or take a scrape.
    # "Then" is when the burst was over (its last answer), not n·D after the threads were started:
    # on a loaded machine the requests take a while to reach the receiver, and the panel cannot
    # name a block before it happens.
    assert len(answered_at) == n, answered_at
    assert found_at is not None and found_at <= max(answered_at) + SCRAPE_INTERVAL + 0.5, (
        found_at - began, max(answered_at) - began)


def test_the_culprit_panel_says_computing_for_work_on_the_loop(start, prometheus_for):
    # async with RECEIVER_CPU_MS=300: the calls wait off the loop, the work holds it, 0.3 s a request
    upstream = start("upstream", UPSTREAM_DELAY="0.1")
    receiver = start("receiver", RECEIVER_MODE="async", UPSTREAM_URL=upstream.url, RECEIVER_CPU_MS="300")
    prometheus = scraping(prometheus_for({"receiver": receiver.metrics_port}))
    panel = next(p for p in dashboard.build()["panels"] if p["title"] == "What blocked the loop")
    query = windows(panel["targets"][0]["expr"])
    burst = [threading.Thread(target=get, args=(f"{receiver.url}/tasks/t{i}",), kwargs={"timeout": 30})
             for i in range(3)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join()
    shares = eventually(lambda: {s["metric"]["culprit"]: float(s["value"][1]) for s in instant(prometheus, query)
                                 if float(s["value"][1]) > 0} or None,
                        SCRAPE_INTERVAL + 10, "the panel names what blocked the loop", interval=0.5)
    # the work, computing. On a busy machine a sample may land just after it (the answer's log
    # line, say), and a stretch in which the loop thread got little of a core reads as waiting:
    # small shares, beside the work's
    assert max(shares, key=shares.__getitem__) == "receiver.cpu.compute · cpu", shares
    computing = sum(share for name, share in shares.items() if name.endswith(" · cpu"))
    assert computing >= 0.8 * sum(shares.values()), shares
