"""Marks the slow tests by what they start, so `make check` can leave them out (loaded by tests/conftest.py).

process: the test starts real service processes (`python -m upstream|receiver|sender`, tools.demo),
a tool's process (hadolint, yamllint, promtool, docker) or a Prometheus. compose: it needs Docker
and the compose lab. `make check` runs `-m "not process and not compose and not tour"`; `make test`
runs all but the tour.

A test is marked process when it uses a fixture that starts processes (directly or through a
fixture that depends on one: item.fixturenames is the whole closure), or when its module or node
id is listed below (it starts them itself: Service(...), run_service, sender_once, subprocess).

Two checks keep the lists true: a listed test that its module no longer defines stops the
collection, and a test that is not marked yet starts a process (subprocess.Popen, which
subprocess.run and asyncio's subprocesses go through) fails, saying to list it here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Generator
from typing import Any

import pytest

# The conftest fixtures that start processes: start (any service), upstream, receiver_for, prometheus_for.
PROCESS_FIXTURES = frozenset({"start", "upstream", "receiver_for", "prometheus_for"})

# Modules whose every test needs Docker and the compose lab.
COMPOSE_MODULES = frozenset({"tests/test_compose.py", "tests/test_tour.py"})

# Modules whose every test starts processes without those fixtures.
PROCESS_MODULES = frozenset(
    {
        "tests/test_demo.py",  # make demo: python -m tools.demo starts upstream and two receivers
        "tests/test_sender_open_loop.py",  # a module-scoped lab of Service(...) processes, sender_once
    }
)

# Tests that start processes without those fixtures, in modules where other tests do not (node ids
# without parameters: every parametrized case of the function is marked).
PROCESS_TESTS = frozenset(
    {
        # run_service: python -m <service> with a bad setting, to its exit
        "tests/test_config.py::test_bad_value_exits_with_one_line",
        "tests/test_config.py::test_checks_across_variables_name_both",
        "tests/test_config.py::test_sender_once_exits_non_zero_when_the_receiver_is_down",
        "tests/test_config.py::test_sender_once_in_open_loop_needs_a_duration",
        "tests/test_receiver_knobs.py::test_bad_knob_exits_with_one_line",
        # Service("sender", ...) with no receiver behind it
        "tests/test_metrics.py::test_a_burst_that_reaches_no_receiver_is_a_failed_burst_not_a_makespan",
        # the culprit sampler's file copied into a service of its own, run as python -I
        "tests/test_detectors.py::test_the_sampler_copied_into_another_service_names_what_blocked_its_loop",
        # examples/asyncio_debug.py, a FastAPI app under uvicorn with asyncio's debug mode
        "tests/test_detectors.py::test_asyncio_debug_mode_names_the_request_task_not_the_blocking_line",
        "tests/test_detectors.py::test_pythonasynciodebug_alone_does_nothing_under_uvicorn_on_python_3_11",
        # a process that computes and one that sleeps, for the benchmark's count of busy cores
        "tests/test_bench_goals.py::test_busy_counts_the_cores_a_process_keeps_busy_over_its_window",
        # hadolint, yamllint, promtool and docker compose config run as processes
        "tests/test_static.py::test_hadolint_finds_nothing_in_the_dockerfiles",
        "tests/test_static.py::test_yamllint_finds_nothing_in_the_yaml",
        "tests/test_static.py::test_promtool_accepts_the_prometheus_config",
        "tests/test_static.py::test_compose_config_is_valid",
    }
)

# docker compose config (a Docker CLI, not the engine): compose as well as process.
COMPOSE_TESTS = frozenset({"tests/test_static.py::test_compose_config_is_valid"})


def _function_id(item: pytest.Item) -> str:
    """The node id without the parameters: tests/test_x.py::test_y[case] -> tests/test_x.py::test_y."""
    return item.nodeid.split("[", 1)[0]


def stale(items: list[pytest.Item]) -> list[str]:
    """Listed tests that their module, collected this run, no longer defines (renamed or removed)."""
    modules = {item.nodeid.split("::", 1)[0]: getattr(item, "module", None) for item in items}
    return sorted(
        node
        for node in PROCESS_TESTS | COMPOSE_TESTS
        if (module := modules.get(node.split("::")[0])) is not None and not hasattr(module, node.split("::")[1])
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if missing := stale(items):
        raise pytest.UsageError(f"tests/markers.py names tests that do not exist: {', '.join(missing)}")
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        function = _function_id(item)
        if module in COMPOSE_MODULES or function in COMPOSE_TESTS:
            item.add_marker(pytest.mark.compose)
        if (
            PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or module in PROCESS_MODULES
            or function in PROCESS_TESTS
        ):
            item.add_marker(pytest.mark.process)


# The node id of the test running now if it is marked neither process nor compose; else None.
_unmarked: str | None = None
_popen_init = subprocess.Popen.__init__
# Processes a library starts on its own, not the test: matplotlib runs fontconfig's fc-list while
# it builds its font cache, the first time a process draws on a machine (a fresh CI, say).
_LIBRARY_TOOLS = frozenset({"fc-list"})


def _guarded_popen_init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
    tool = args[0] if isinstance(args, (list, tuple)) and args else args
    if _unmarked is not None and tool not in _LIBRARY_TOOLS:
        # pytest.fail raises a BaseException: the test's own `except Exception` cannot swallow it.
        pytest.fail(
            f"{_unmarked} starts a process ({args!r}) but is not marked process: list it in tests/markers.py",
            pytrace=False,
        )
    _popen_init(self, args, *rest, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _guarded_popen_init  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _popen_init  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    global _unmarked
    marked = item.get_closest_marker("process") or item.get_closest_marker("compose")
    _unmarked = None if marked else item.nodeid
    try:
        return (yield)
    finally:
        _unmarked = None
