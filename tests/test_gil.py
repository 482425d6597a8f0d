"""bench/gil.py: threads beside the GIL, each way of waiting run briefly against the shared-GIL model.

The runs are short and the GIL little contended (4 threads, 5 ms of work a request every
0.2 s): they check that each way runs its threads, counts its answers and its CPU, and lands
near shared_gil(); `python -m bench.gil` measures the contended case (docs/model.md).
"""

from __future__ import annotations

import pytest

from bench import gil
from models.steady import shared_gil

THREADS, DELAY, CPU_MS, SECONDS = 4, 0.2, 5.0, 1.5


def near_the_model(measured: dict) -> float:
    per_request = measured["cpu_seconds"] / measured["answers"]
    assert CPU_MS / 1000 <= per_request < 0.05, measured  # the work, and the way's own CPU, is counted
    return measured["window_rate"] / shared_gil(THREADS, DELAY, per_request)


def test_threads_that_sleep_then_compute_answer_as_the_shared_gil_says():
    measured = gil.child("sleep", THREADS, DELAY, CPU_MS, SECONDS, "http://127.0.0.1:1")
    assert measured["answers"] >= THREADS * 5, measured  # every thread went round at least 5 times
    assert 0.7 < near_the_model(measured) < 1.15, measured


@pytest.mark.parametrize("way", [way for way in gil.WAYS if way != "sleep"])
def test_every_client_way_calls_upstream_and_answers_near_the_model(upstream, way):
    measured = gil.child(way, THREADS, DELAY, CPU_MS, SECONDS, upstream.url)
    assert measured["answers"] >= THREADS * 5, measured
    assert 0.6 < near_the_model(measured) < 1.15, measured


def test_the_table_has_a_row_a_way_with_its_ratio():
    rows = [{"way": way, "window_rate": 30.0, "cpu_per_request": 0.022, "model": 36.8, "ratio": 30 / 36.8}
            for way in gil.WAYS]
    text = gil.table({"threads": 40, "delay": 1.0, "cpu_ms": 20.0, "seconds": 20.0}, rows)
    assert "T = 40, D = 1 s, c = 20 ms" in text
    for way in gil.WAYS:
        assert f"| {way} | 30.0 | 22.0 ms | 36.8 | 0.815 |" in text
