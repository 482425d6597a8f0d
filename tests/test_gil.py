"""bench/gil.py: threads beside the GIL, each way of waiting run briefly against the shared-GIL model.

The runs are short and the GIL little contended (4 threads, 5 ms of work a request every
0.2 s): they check that each way runs its threads, counts its answers and its CPU, and lands
near shared_gil(); `python -m bench.gil` measures the contended case (docs/model.md).
"""

from __future__ import annotations

import sys

import pytest

from bench import gil
from models.steady import shared_gil

THREADS, DELAY, CPU_MS, SECONDS = 4, 0.2, 5.0, 1.5


def near_the_model(measured: dict) -> float:
    per_request = measured["cpu_seconds"] / measured["answers"]
    assert CPU_MS / 1000 <= per_request < 0.05, measured  # the work, and the way's own CPU, is counted
    return measured["window_rate"] / shared_gil(THREADS, DELAY, per_request)


def where_the_time_goes(way: str, measured: dict) -> None:
    """A request's parts, little contended (the bounds leave room for a loaded machine): handed
    over at once unless from a loop, the call about D, the work about c; the answer back on the
    loop only from one."""
    from_a_loop = way in gil.FROM_A_LOOP
    assert 0 <= measured["handed_over"] < (0.1 if from_a_loop else 0.01), measured
    assert 0 <= measured["call_beyond_delay"] < 0.1, measured
    assert CPU_MS / 1000 <= measured["work"] < 0.1, measured
    assert (measured["back_on_loop"] is not None) == from_a_loop, measured
    assert not from_a_loop or 0 <= measured["back_on_loop"] < 0.1, measured


def test_threads_that_sleep_then_compute_answer_as_the_shared_gil_says():
    measured = gil.child("sleep", THREADS, DELAY, CPU_MS, SECONDS, "http://127.0.0.1:1")
    assert measured["answers"] >= THREADS * 5, measured  # every thread went round at least 5 times
    assert 0.7 < near_the_model(measured) < 1.15, measured
    where_the_time_goes("sleep", measured)


@pytest.mark.parametrize("way", [way for way in gil.WAYS if way != "sleep"])
def test_every_client_way_calls_upstream_and_answers_near_the_model(upstream, way):
    measured = gil.child(way, THREADS, DELAY, CPU_MS, SECONDS, upstream.url)
    assert measured["answers"] >= THREADS * 5, measured
    assert 0.6 < near_the_model(measured) < 1.15, measured
    where_the_time_goes(way, measured)


def test_a_way_runs_at_the_switch_interval_asked_and_leaves_the_process_as_it_was():
    before = sys.getswitchinterval()
    measured = gil.child("sleep", THREADS, DELAY, CPU_MS, 0.5, "http://127.0.0.1:1", interval=0.02)
    assert measured["interval"] == pytest.approx(0.02) and measured["answers"] >= THREADS
    assert sys.getswitchinterval() == before


def test_the_tables_have_a_row_a_way_and_the_other_intervals_in_the_second():
    def row(way: str, interval: float) -> dict:
        measured = {"window_rate": 30.0, "cpu_seconds": 0.022 * 600, "answers": 600, "interval": interval,
                    "handed_over": 0.02 if way in gil.FROM_A_LOOP else 0.0, "call_beyond_delay": 0.1,
                    "work": 0.15, "back_on_loop": 0.04 if way in gil.FROM_A_LOOP else None}
        return gil.row(way, measured, 40, 1.0)

    rows = [row(way, gil.DEFAULT_INTERVAL) for way in gil.WAYS] + [row("requests", 0.02), row("requests", 0.001)]
    model = shared_gil(40, 1.0, 0.022)
    assert rows[0]["model"] == model and rows[0]["model_beyond_delay"] == pytest.approx(40 / model - 1.0)
    text = gil.table({"threads": 40, "delay": 1.0, "cpu_ms": 20.0, "seconds": 20.0}, rows)
    assert "T = 40, D = 1 s, c = 20 ms" in text
    first, second = text.split("\n## ")
    for way in gil.WAYS:
        assert f"| {way} | 30.0 | 22.0 ms | {model:.1f} | {30 / model:.3f} |" in first
    assert "| 20 ms |" not in first  # the first table: every way at the default interval only
    beyond = f"{(40 / model - 1) * 1000:.0f}"
    lines = [line for line in second.splitlines() if line.startswith("| requests")]
    assert lines == [f"| requests | 1 ms | 0 | 100 | 150 | 250 | {beyond} | – |",
                     f"| requests | 5 ms | 0 | 100 | 150 | 250 | {beyond} | – |",
                     f"| requests | 20 ms | 0 | 100 | 150 | 250 | {beyond} | – |",
                     f"| requests, trust_env | 5 ms | 0 | 100 | 150 | 250 | {beyond} | – |",
                     f"| requests, run_in_executor | 5 ms | 20 | 100 | 150 | 270 | {beyond} | 40 |",
                     f"| requests, anyio to_thread | 5 ms | 20 | 100 | 150 | 270 | {beyond} | 40 |"]
