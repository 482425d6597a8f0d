"""The sender's open loop and its several targets, against real receivers on loopback.

Runs go through sender.run.run, the code `python -m sender --once --json` runs, in this
process, so that the sender's metrics can be read from the registry; one test runs the
command itself. Timing is checked against the model with a tolerance, never as a speed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from lab.arrivals import schedule
from lab.model import quantile
from sender.run import run
from sender.settings import Settings
from tests.conftest import scrape, value
from tools.processes import Service, free_port, sender_once

# As in test_modes: measured times within 20% plus a small constant of the model's.
RELATIVE, CONSTANT = 0.20, 0.15


def close(measured: float, predicted: float) -> bool:
    return predicted * (1 - RELATIVE) - CONSTANT <= measured <= predicted * (1 + RELATIVE) + CONSTANT


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Any:
    """One upstream and an async and a sync receiver, shared by the tests of this module."""
    logs = tmp_path_factory.mktemp("open-loop")
    upstream = Service("upstream", {}, logs / "upstream.log").start()
    started = [upstream]
    try:
        upstream.wait_healthy()
        receivers = {
            mode: Service("receiver", {"RECEIVER_MODE": mode, "UPSTREAM_URL": upstream.url},
                          logs / f"{mode}.log").start()
            for mode in ("async", "sync")
        }
        started += receivers.values()
        for receiver in receivers.values():
            receiver.wait_healthy()
        yield receivers
    finally:
        for service in reversed(started):
            service.stop()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """The sender's counters now, to compare with after a run."""

    NAMES = ("sender_requests_sent_total", "sender_requests_dropped_total", "sender_request_duration_seconds_count")

    def __init__(self, *modes: str):
        self.before = {(n, m): sample(n, mode=m) for n in self.NAMES for m in modes}
        self.answers = {m: sample("sender_requests_total", mode=m, status="200") for m in modes}

    def added(self, name: str, mode: str) -> float:
        return sample(name, mode=mode) - self.before[(name, mode)]

    def added_200(self, mode: str) -> float:
        return sample("sender_requests_total", mode=mode, status="200") - self.answers[mode]


def send(tmp_path: Path, **settings: Any) -> tuple[int, dict[str, Any]]:
    """One `--once --json` run in this process: its exit status and its JSON."""
    path = tmp_path / "run.json"
    code = asyncio.run(run(Settings(**settings), once=True, json_path=path))
    return code, json.loads(path.read_text())


def received(receiver: Service, mode: str) -> float:
    return value(scrape(receiver.metrics_url), "receiver_http_requests_total", mode=mode, route="/tasks/{name}",
                 status="200")


def test_constant_rate_keeps_the_schedule(lab, tmp_path):
    receiver, delay = lab["async"], 0.05
    counts, before = Counts("async"), received(receiver, "async")
    code, result = send(tmp_path, receiver_url=receiver.url, sender_rate=20, sender_duration=2, sender_delay=delay)

    expected = schedule(20, 2, "constant")
    (target,) = result["targets"]
    assert code == 0 and result["kind"] == "rate" and target["mode"] == "async"
    assert target["sent"] == len(expected) == 40 and target["dropped"] == 0
    assert target["answered"] == {"200": 40}
    assert [r[0] for r in target["records"]] == expected  # exactly lab.arrivals' schedule
    assert all(r[2] == 200 and r[1] >= delay for r in target["records"])
    assert delay <= target["latency"]["p50"] and close(target["latency"]["p50"], delay)
    # Answers within the run's 2 s, per second: the last ones may come after it.
    within = sum(1 for sent, latency, *_ in target["records"] if sent + latency <= 2)
    assert abs(target["achieved_rate"] * 2 - within) <= 1 and target["achieved_rate"] <= 20
    # The sender's counters, under the receiver's mode, and the receiver's own count agree.
    assert counts.added("sender_requests_sent_total", "async") == 40
    assert counts.added_200("async") == 40
    assert counts.added("sender_request_duration_seconds_count", "async") == 40
    assert counts.added("sender_requests_dropped_total", "async") == 0
    assert received(receiver, "async") - before == 40


def test_poisson_arrivals_are_the_seeded_schedule(lab, tmp_path):
    code, result = send(tmp_path, receiver_url=lab["async"].url, sender_rate=30, sender_duration=1,
                        sender_arrivals="poisson", sender_seed=7, sender_delay=0)
    (target,) = result["targets"]
    expected = schedule(30, 1, "poisson", 7)
    assert code == 0 and (result["arrivals"], result["seed"]) == ("poisson", 7)
    assert [r[0] for r in target["records"]] == expected != schedule(30, 1, "poisson", 8)
    assert target["sent"] == len(expected) and target["answered"] == {"200": len(expected)}


def sync_answers(sends: list[float], delay: float) -> list[float]:
    """The model for a sync receiver under an open loop: one request at a time, each answered
    `delay` after the later of its arrival and the previous answer. Which waiting request it
    reads next is up to the event loop, not first come first served; the answer times are the
    same whatever the order (one server, equal service times), so these are compared, sorted."""
    done, answers = 0.0, []
    for sent in sends:
        done = max(done, sent) + delay
        answers.append(done)
    return answers


def test_one_schedule_to_two_receivers_and_latency_from_the_intended_time(lab, tmp_path):
    """A sync receiver can answer 1/D = 10 requests/s; at 20/s its queue grows, and so does the
    latency measured from each request's intended send time. The async one keeps up."""
    delay, rate, duration = 0.1, 20, 1.5
    counts = Counts("async", "sync")
    code, result = send(tmp_path, receiver_url=f"{lab['async'].url},{lab['sync'].url}", sender_rate=rate,
                        sender_duration=duration, sender_delay=delay)

    expected = schedule(rate, duration, "constant")
    fast, slow = result["targets"]
    assert code == 0 and (fast["mode"], slow["mode"]) == ("async", "sync")
    for target in (fast, slow):
        assert [r[0] for r in target["records"]] == expected  # the same schedule for both
        assert target["sent"] == len(expected) and target["answered"] == {"200": len(expected)}
        mode = target["mode"]
        assert counts.added("sender_requests_sent_total", mode) == len(expected)
        assert counts.added_200(mode) == len(expected)

    # The async receiver keeps up: each answer within the model's time of the request's actual
    # start. (The sender shares this process and its cores with the other tests' workers: its
    # own lateness, which the latency from the intended time includes, is in each record's lag.)
    from_start = sorted(latency - lag for _, latency, _, lag in fast["records"])
    assert all(lag >= 0 for *_, lag in fast["records"])
    assert close(quantile(from_start, 0.99), delay)
    answers = sorted(sent + latency for sent, latency, *_ in slow["records"])
    model = sync_answers(expected, delay)
    assert all(close(m, p) for m, p in zip(answers, model)), list(zip(answers, model))
    assert slow["latency"]["p99"] > 5 * delay  # queueing: far above the delay itself
    latencies = [r[1] for r in slow["records"]]
    assert sum(latencies[-5:]) / 5 > sum(latencies[:5]) / 5 + 0.5  # and growing through the run


def test_requests_over_the_in_flight_cap_are_dropped_not_delayed(lab, tmp_path):
    """At most 2 in flight per receiver: with D = 0.5 s and 10 requests/s most are dropped."""
    # Fresh receivers: their in-flight peak (over the last 5 s) must see only this run.
    upstream_url = lab["async"].env["UPSTREAM_URL"]
    fresh = {
        mode: Service("receiver", {"RECEIVER_MODE": mode, "UPSTREAM_URL": upstream_url},
                      tmp_path / f"{mode}.log").start()
        for mode in ("async", "sync")
    }
    try:
        for receiver in fresh.values():
            receiver.wait_healthy()
        counts = Counts("async", "sync")
        code, result = send(tmp_path, receiver_url=f"{fresh['async'].url},{fresh['sync'].url}", sender_rate=10,
                            sender_duration=2, sender_delay=0.5, sender_max_in_flight=2)
        scheduled = len(schedule(10, 2, "constant"))
        assert code == 0
        assert [t["mode"] for t in result["targets"]] == list(fresh)
        for target, receiver in zip(result["targets"], fresh.values()):
            mode = target["mode"]
            dropped = [r for r in target["records"] if r[2] == "dropped"]
            assert target["dropped"] > 0 and target["sent"] + target["dropped"] == scheduled == len(target["records"])
            assert len(dropped) == target["dropped"] and all(r[1] is None is r[3] for r in dropped)
            assert target["peak_in_flight"] == 2
            assert counts.added("sender_requests_dropped_total", mode) == target["dropped"]
            # Dropped means never sent: the receiver answered exactly the ones sent.
            assert received(receiver, mode) == target["sent"] == target["answered"]["200"]
        peak = value(scrape(fresh["async"].metrics_url), "receiver_http_requests_in_flight_peak")
        assert peak == 2  # the async receiver would have had 5 at once without the cap
    finally:
        for receiver in fresh.values():
            receiver.stop()


def test_a_burst_goes_to_every_receiver_each_with_its_own_prediction(lab, tmp_path, capsys):
    counts = Counts("async", "sync")
    urls = [lab["async"].url, lab["sync"].url]
    code, result = send(tmp_path, receiver_url=",".join(urls), sender_concurrency=3, sender_delay=0.2)

    assert code == 0 and result["kind"] == "burst"
    fast, slow = result["targets"]
    assert [t["url"] for t in result["targets"]] == urls
    assert (fast["mode"], slow["mode"]) == ("async", "sync")
    assert (fast["predicted"], slow["predicted"]) == (pytest.approx(0.2), pytest.approx(0.6))  # D and N·D
    for target in (fast, slow):
        assert [r["name"] for r in target["results"]] == ["task1", "task2", "task3"]
        assert all(r["status"] == 200 for r in target["results"])
        assert close(target["makespan"], target["predicted"])
        assert counts.added("sender_requests_sent_total", target["mode"]) == 3
        assert counts.added_200(target["mode"]) == 3
        assert sample("sender_burst_size", mode=target["mode"]) == 3
        predicted = sample("sender_burst_predicted_makespan_seconds", mode=target["mode"])
        assert predicted == pytest.approx(target["predicted"])
        assert sample("sender_offered_requests_per_second", mode=target["mode"]) == 3 / 5.0  # N / SENDER_INTERVAL
    printed = capsys.readouterr().out
    for url in urls:  # one timeline per receiver, under its URL
        assert f"{url}\ntask " in printed


def test_once_writes_json_for_both_kinds(lab, tmp_path):
    path = tmp_path / "burst.json"
    done = sender_once(lab["async"].url, args=["--json", str(path)], SENDER_CONCURRENCY="2", SENDER_DELAY="0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    burst = json.loads(path.read_text())
    assert set(burst) == {"sender_version", "kind", "targets"} and burst["sender_version"] == 1
    (target,) = burst["targets"]
    assert set(target) == {"url", "mode", "info", "n", "delay", "makespan", "predicted", "results"}
    assert (target["url"], target["mode"], target["n"], target["delay"]) == (lab["async"].url, "async", 2, 0.1)
    assert target["info"]["mode"] == "async"
    assert [set(r) for r in target["results"]] == [{"name", "seconds", "status"}] * 2

    path = tmp_path / "rate.json"
    before = time.time()
    done = sender_once(lab["async"].url, args=["--json", str(path)], SENDER_RATE="10", SENDER_DURATION="0.5",
                       SENDER_DELAY="0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "achieved" in done.stdout and f"\n{lab['async'].url}" in done.stdout  # the table
    rate = json.loads(path.read_text())
    assert set(rate) == {"sender_version", "kind", "rate", "arrivals", "seed", "duration", "max_in_flight",
                         "timeout", "started_at", "targets"}
    assert before < rate["started_at"] < time.time()
    assert (rate["kind"], rate["rate"], rate["arrivals"], rate["duration"]) == ("rate", 10, "constant", 0.5)
    (target,) = rate["targets"]
    assert set(target) == {"url", "mode", "info", "scheduled", "sent", "answered", "dropped", "late",
                           "peak_in_flight", "achieved_rate", "latency", "records"}
    assert set(target["latency"]) == {"p50", "p90", "p99", "p999", "max", "mean"}
    records = target["records"]
    assert records == [[r[0], r[1], 200, r[3]] for r in records] and len(records) == 5
    assert all(0 <= lag < latency for _, latency, _, lag in records)


def test_once_open_loop_fails_only_when_nothing_answers(tmp_path):
    path = tmp_path / "down.json"
    done = sender_once(f"http://127.0.0.1:{free_port()}", args=["--json", str(path)], SENDER_RATE="20",
                       SENDER_DURATION="0.2")
    assert done.returncode == 1
    assert "could not reach" in done.stdout
    (target,) = json.loads(path.read_text())["targets"]
    assert target["answered"] == {"error": 4} and target["mode"] == "unknown" and target["latency"]["p50"] is None
