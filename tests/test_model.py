"""The model: closed forms, that every mode has both a model and a handler, and that the
simulator reproduces every burst; and that the model's tooling stays out of the images."""

import ast
import random
import typing

import pytest

from lab import model
from models import steady
from models.simulate import simulate
from receiver.modes import HANDLERS
from tools.processes import ROOT


def test_every_mode_has_a_handler_a_model_and_a_formula():
    assert set(HANDLERS) == set(model.MODES) == set(model.FORMULAS)
    assert set(model.BLOCKING_CALLS) == set(model.UPSTREAM_CALLS) == set(model.MODES)


def test_a_mode_is_one_record_and_the_tables_are_its_views():
    assert tuple(model.MODES_) == model.MODES == typing.get_args(model.Mode)  # one record per mode, in order
    for mode, record in model.MODES_.items():
        assert (model.FORMULAS[mode], model.FORMULAS_PER_WORKER[mode], model.CAPACITY_FORMULAS[mode]) == (
            record.formula, record.formula_per_worker, record.capacity_formula)
        assert model.BLOCKING_CALLS[mode] == record.blocking_calls
        assert model.UPSTREAM_CALLS[mode] == record.upstream_calls
        assert steady.LATENCY_BELOW_CAPACITY[mode] == dict(record.latency_below_capacity)
        assert record.shape in typing.get_args(model.Shape)


def test_the_images_hold_no_model_tooling():
    # What .dockerignore lets into the images' build context: its "!" lines (lab/, the services).
    kept = {line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    ours = {path.parent.name for path in ROOT.glob("*/__init__.py")}  # the repository's top-level packages
    assert {"lab", "upstream", "receiver", "sender"} <= kept and not {"models", "bench", "tools", "tests"} & kept
    assert not (ROOT / "lab/simulate.py").exists() and (ROOT / "models/simulate.py").exists()
    # No module of the images' code imports a package of ours that is not in the images.
    for path in sorted(p for name in kept & ours for p in (ROOT / name).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                     and not node.level}
        assert not {name.split(".")[0] for name in imported} & (ours - kept), path.relative_to(ROOT)


@pytest.mark.parametrize(
    "mode, caps, expected",
    [
        ("sync", model.Caps(100, 40), [1, 2, 3, 4]),
        ("async", model.Caps(100, 40), [1, 1, 1, 1]),
        ("async", model.Caps(0, 40), [1, 1, 1, 1]),
        ("async", model.Caps(3, 40), [1, 1, 1, 2]),
        ("threaded", model.Caps(100, 40), [1, 1, 1, 1]),
        ("threaded", model.Caps(100, 2), [1, 1, 2, 2]),
        ("def", model.Caps(100, 40), [1, 1, 1, 1]),
        ("def", model.Caps(100, 40, tokens=3), [1, 1, 1, 2]),
        ("mixed", model.Caps(100, 40), [2, 3, 4, 5]),
        ("mixed", model.Caps(2, 40), [2, 3, 4, 5]),
        ("mixed", model.Caps(1, 40), [2, 4, 6, 8]),
    ],
)
def test_completion_times_in_units_of_delay(mode, caps, expected):
    assert model.completion_times(mode, 4, 1.0, caps) == expected
    assert model.makespan(mode, 4, 2.5, caps) == expected[-1] * 2.5


@pytest.mark.parametrize("n", [1, 2, 5, 17])
@pytest.mark.parametrize("limit", [0, 1, 2, 3, 8])
def test_mixed_recurrence_matches_its_closed_form(n, limit):
    closed = [2 * k if limit == 1 else k + 1 for k in range(1, n + 1)]
    assert model.completion_times("mixed", n, 1.0, model.Caps(limit, 1)) == closed


def test_the_seed_numbers():
    caps = model.Caps(100, 40)
    assert model.makespan("sync", 2, 10.0, caps) == 20.0
    assert model.makespan("async", 2, 10.0, caps) == 10.0


def test_upstream_concurrency_and_blocking():
    caps = model.Caps(pool_limit=3, threads=2, tokens=4)
    assert [model.upstream_concurrency(m, 5, caps) for m in model.MODES] == [1, 3, 3, 2, 4]
    assert [model.blocked_seconds(m, 4, 0.5) for m in model.MODES] == [2.0, 0.0, 2.0, 0.0, 0.0]


def test_an_empty_burst_is_an_error():
    with pytest.raises(ValueError, match="at least one request"):
        model.makespan("sync", 0, 1.0, model.Caps(1, 1))


# The simulator (models/simulate.py) follows the rules the burst model states; for a burst it
# must give the burst model's numbers, for every mode and cap.
BURST_CASES = [
    ("sync", model.Caps(100, 40)),
    ("async", model.Caps(100, 40)),
    ("async", model.Caps(0, 40)),
    ("async", model.Caps(3, 40)),
    ("threaded", model.Caps(100, 40)),
    ("threaded", model.Caps(100, 2)),
    ("mixed", model.Caps(100, 40)),
    ("mixed", model.Caps(2, 40)),
    ("mixed", model.Caps(1, 40)),
    ("mixed", model.Caps(0, 40)),
]


@pytest.mark.parametrize("mode, caps", BURST_CASES)
@pytest.mark.parametrize("n, delay", [(1, 1.0), (4, 1.0), (4, 2.5), (9, 0.1)])
def test_the_simulation_of_a_burst_is_the_burst_model(mode, caps, n, delay):
    simulated = simulate(mode, [0.0] * n, delay, caps)
    assert simulated == pytest.approx(model.completion_times(mode, n, delay, caps), abs=1e-9)


def test_the_simulation_of_random_bursts_is_the_burst_model():
    rng = random.Random(20240601)
    for _ in range(300):
        n, limit, threads = rng.randint(1, 30), rng.randint(0, 10), rng.randint(1, 10)
        delay = rng.choice([1.0, 0.37, 2.5, 0.1, 7.3, rng.uniform(0.01, 10)])
        caps = model.Caps(limit, threads, tokens=rng.randint(1, 10))
        for mode in model.MODES:
            simulated = sorted(simulate(mode, [3.0] * n, delay, caps))
            expected = [3.0 + t for t in model.completion_times(mode, n, delay, caps)]
            assert [3.0 + x for x in simulated] == pytest.approx(expected, abs=1e-9), (mode, n, caps, delay)


WORK_CASES = [  # each request also computes c = caps.cpu (RECEIVER_CPU_MS), on the loop, the GIL or P processes
    model.Caps(100, 40, cpu=0.02), model.Caps(0, 3, tokens=3, cpu=0.3),
    model.Caps(100, 40, cpu=0.02, processes=2, cores=2), model.Caps(100, 4, tokens=4, cpu=0.3, processes=2, cores=2),
    model.Caps(0, 40, cpu=0.7, processes=3, cores=2),
]


@pytest.mark.parametrize("caps", WORK_CASES, ids=lambda c: f"c={c.cpu:g},P={c.processes}")
@pytest.mark.parametrize("mode", model.MODES)
@pytest.mark.parametrize("n, delay", [(1, 1.0), (10, 1.0), (37, 0.25), (10, 0.0)])
def test_the_simulation_of_a_burst_that_computes_is_the_work_model(mode, caps, n, delay):
    simulated = sorted(simulate(mode, [0.0] * n, delay, caps))
    assert simulated == pytest.approx(model.work_times(mode, n, delay, caps), abs=1e-9)


def test_a_burst_is_answered_in_request_order():
    # The model's t_k is "the k-th answer"; in the simulation that is also request k.
    for mode, caps in BURST_CASES:
        simulated = simulate(mode, [0.0] * 6, 1.0, caps)
        assert simulated == sorted(simulated)


# W workers (RECEIVER_WORKERS): each its own receiver; the model's assumption is an even spread.

@pytest.mark.parametrize(
    "mode, n, workers, expected",
    [
        ("sync", 4, 4, [1, 1, 1, 1]),  # the point of workers: ⌈N/W⌉·D
        ("sync", 8, 4, [1, 1, 1, 1, 2, 2, 2, 2]),
        ("sync", 5, 2, [1, 1, 2, 2, 3]),
        ("async", 8, 2, [1] * 8),
        ("mixed", 4, 2, [2, 2, 3, 3]),  # (⌈N/W⌉+1)·D
        ("threaded", 5, 2, [1, 1, 1, 1, 2]),  # T = 2 per worker: 3 on one worker take two rounds
    ],
)
def test_workers_share_a_burst_evenly_in_the_model(mode, n, workers, expected):
    caps = model.Caps(pool_limit=100, threads=2 if mode == "threaded" else 40, workers=workers)
    assert model.completion_times(mode, n, 1.0, caps) == expected
    assert model.even_spread(n, workers) == sorted(model.even_spread(n, workers), reverse=True)
    assert sum(model.even_spread(n, workers)) == n


def test_an_uneven_spread_takes_as_long_as_the_busiest_worker():
    caps = model.Caps(100, 40, workers=4)
    assert model.makespan_spread("sync", [2, 1, 1, 0], 1.0, caps) == 2
    assert model.makespan_spread("sync", [4], 1.0, caps) == model.makespan("sync", 4, 1.0, model.Caps(100, 40))
    assert model.completion_times_spread("sync", [3, 1], 0.5, caps) == [0.5, 0.5, 1.0, 1.5]


@pytest.mark.parametrize("loads", [[1, 1, 1, 1], [2, 1, 1], [3, 1], [4], [3, 3, 2], [2, 2, 2, 2]])
def test_the_spread_is_read_back_from_sync_completion_times(loads):
    times = model.completion_times_spread("sync", loads, 0.5, model.Caps(100, 40, 4))
    noisy = [t * 1.01 + 0.003 * k for k, t in enumerate(times)]  # each answer a little late, as measured
    assert model.sync_loads(noisy, 0.5) == loads


def test_capacity_grows_with_workers_and_the_simulation_models_one():
    one, four = model.Caps(100, 40), model.Caps(100, 40, workers=4)
    assert [steady.capacity(m, 1.0, four) for m in model.MODES] == [4 * steady.capacity(m, 1.0, one)
                                                                    for m in model.MODES]
    assert model.Caps.from_info({"pool_limit": 100, "threads": 40, "workers": 4}) == four
    assert model.Caps.from_info({"pool_limit": 100, "threads": 40, "threadpool_tokens": 7}).tokens == 7
    assert model.Caps.from_info({"pool_limit": 100, "threads": 40}) == one  # a receiver from before workers
    with pytest.raises(ValueError, match="one worker"):
        steady.steady_state("sync", 0.5, 1.0, four, duration=10)


WORK = model.Caps(pool_limit=100, threads=40, cpu=0.02)


@pytest.mark.parametrize("mode, last", [("sync", 10 * 1.02), ("async", 1.2), ("mixed", 11 + 0.2),
                                        ("threaded", 1.2), ("def", 1.2)])
def test_work_on_the_loop_or_under_the_gil_queues_one_request_after_another(mode, last):
    times = model.completion_times(mode, 10, 1.0, WORK)
    assert times[-1] == pytest.approx(last)
    assert times == sorted(times) and len(times) == 10


@pytest.mark.parametrize("mode, last", [("sync", 10.02), ("async", 1.1), ("mixed", 11.02), ("threaded", 1.1),
                                        ("def", 1.1)])
def test_work_in_processes_runs_as_many_at_once_as_there_are_cores(mode, last):
    two = model.Caps(pool_limit=100, threads=40, cpu=0.02, processes=2, cores=2)
    assert model.makespan(mode, 10, 1.0, two) == pytest.approx(last)
    # more processes than cores compute no faster
    assert model.makespan(mode, 10, 1.0, model.Caps(100, 40, cpu=0.02, processes=8, cores=2)) == pytest.approx(last)


def test_work_behind_a_connector_limit_queues_by_wave():
    caps = model.Caps(pool_limit=2, threads=40, cpu=0.1)
    assert model.completion_times("async", 4, 1.0, caps) == pytest.approx([1.1, 1.2, 2.1, 2.2])
    caps = model.Caps(pool_limit=100, threads=2, cpu=0.1)  # each thread holds its request through the work
    assert model.completion_times("threaded", 4, 1.0, caps) == pytest.approx([1.1, 1.2, 2.2, 2.3])


def test_without_work_the_model_is_the_io_one():
    for mode in model.MODES:
        assert model.completion_times(mode, 7, 1.0, CAPS_ZERO_WORK) == model.MODES_[mode].completion_times(
            7, 1.0, CAPS_ZERO_WORK)


CAPS_ZERO_WORK = model.Caps(pool_limit=3, threads=2, tokens=2, processes=4, cores=2)


def test_mixed_late_waiters_start_after_the_whole_previous_wave():
    two = model.Caps(pool_limit=2, threads=40)
    assert model.mixed_late(4, 0.5, two) == pytest.approx([1.0, 1.5, 2.5, 3.0])
    assert model.completion_times("mixed", 4, 0.5, two) == pytest.approx([1.0, 1.5, 2.0, 2.5])
    for caps in (model.Caps(pool_limit=1, threads=40), model.Caps(pool_limit=100, threads=40),
                 model.Caps(pool_limit=0, threads=40)):  # one call a wave, or no waiting: no race
        assert model.mixed_late(6, 0.5, caps) == model.completion_times("mixed", 6, 0.5, caps)
