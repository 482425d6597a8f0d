"""Catching blocking calls in your own code: the detectors a user can add, run against the lab's modes.

BlockBuster (a maintained package) patches the blocking functions of the standard library
(sockets, files, time.sleep, ...) to raise when they are called on a thread that runs an
event loop. In a test it fails a receiver whose loop a requests call would hold (sync,
mixed) and passes the ones that leave the loop free (async, threaded, def). Work that only
computes calls nothing it patches: RECEIVER_CPU_MS on the loop passes, though it holds the
loop as surely (the culprit sampler's kind="cpu" sees it). In-process: the receiver's app
through httpx's ASGI transport, upstream's app in the same loop (tests/test_app.py's way).
"""

from __future__ import annotations

import pytest
from blockbuster import BlockingError, blockbuster_ctx

from tests.test_app import Upstream, client_of, receiver_app, run


def ask(mode: str, **knobs: object) -> int:
    """One GET /tasks to a receiver in this mode with BlockBuster on; its status."""
    upstream = Upstream(upstream_delay=0.05)
    app = receiver_app(upstream.url, receiver_mode=mode, **knobs)
    status: list[int] = []

    async def test() -> None:
        async with upstream.serving(), client_of(app) as client:
            with blockbuster_ctx():
                status.append((await client.get("/tasks/t1")).status_code)

    run(test)
    return status[0]


@pytest.mark.parametrize("mode", ["sync", "mixed"])
def test_blockbuster_fails_a_receiver_whose_loop_a_call_holds(mode):
    with pytest.raises(BlockingError, match="^Blocking call to ") as raised:
        ask(mode)
    # the first blocking function requests reaches (a look for ~/.netrc: os.stat), called from requests
    assert any("/requests/" in str(entry.path) for entry in raised.traceback), raised.value


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_blockbuster_passes_a_receiver_that_keeps_its_loop_free(mode):
    assert ask(mode) == 200


def test_blockbuster_does_not_see_work_that_only_computes():
    assert ask("async", receiver_cpu_ms=50) == 200  # 50 ms on the loop, and nothing to raise on
