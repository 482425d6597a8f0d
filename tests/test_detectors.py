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

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
from blockbuster import BlockingError, blockbuster_ctx

from tests.test_app import Upstream, client_of, receiver_app, run
from tools.processes import ROOT, free_port, get, wait_ok


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
    with pytest.raises(BlockingError, match="^Blocking call to socket.socket.connect$") as raised:
        ask(mode)
    # the first blocking function the call reaches: opening its connection, from requests
    assert any("/requests/" in str(entry.path) for entry in raised.traceback), raised.value
    # That connect() never ran, and urllib3 closes a socket whose connect fails only on an OSError,
    # which BlockingError is not: close it here, not in whichever test the collector next runs in.
    opened = [sock for entry in raised.traceback if isinstance(sock := entry.frame.f_locals.get("sock"), socket.socket)]
    for sock in opened:
        sock.close()
    assert opened


@pytest.mark.parametrize("mode", ["async", "threaded", "def"])
def test_blockbuster_passes_a_receiver_that_keeps_its_loop_free(mode):
    assert ask(mode) == 200


def test_blockbuster_does_not_see_work_that_only_computes():
    assert ask("async", receiver_cpu_ms=50) == 200  # 50 ms on the loop, and nothing to raise on


# --- the culprit sampler as a drop-in: one file, the standard library only --------------------

SAMPLER = ROOT / "receiver" / "culprits.py"

DROP_IN = """
import asyncio, json, logging, sys, threading
import culprits, myapp

class Seconds:
    def __init__(self):
        self.value = 0.0
    def inc(self, amount=1):
        self.value += amount

class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())

counts, lines = {}, Lines()
logging.getLogger("culprits").addHandler(lines)

async def main():
    probe = culprits.LoopProbe()
    task = asyncio.create_task(probe.run())
    watcher = culprits.Culprits(probe, lambda name, kind: counts.setdefault((name, kind), Seconds()), 0.1, 20,
                                own=("myapp",))
    watcher.start(threading.get_ident())
    await asyncio.sleep(0.2)  # the probe running: due times to be late against
    myapp.block()
    for _ in range(100):  # until the block is over: its line, at the watcher's next look after the loop woke
        if lines.lines:
            break
        await asyncio.sleep(0.05)
    watcher.stop()
    task.cancel()

asyncio.run(main())
lab = ("lab", "receiver", "prometheus_client")
print(json.dumps({"counts": {f"{n} {k}": s.value for (n, k), s in counts.items()}, "lines": lines.lines,
                  "imported": sorted(m for m in sys.modules if m.split(".")[0] in lab)}))
"""


def test_the_sampler_imports_only_the_standard_library():
    tree = ast.parse(SAMPLER.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported and imported <= sys.stdlib_module_names | {"__future__"}, imported - sys.stdlib_module_names


def test_the_sampler_copied_into_another_service_names_what_blocked_its_loop(tmp_path):
    # a service of its own: the sampler's file copied beside it, nothing of the lab on the path (python -I)
    shutil.copy(SAMPLER, tmp_path / "culprits.py")
    (tmp_path / "myapp.py").write_text("import time\n\ndef block():\n    time.sleep(0.5)\n")
    script = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + DROP_IN
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["imported"] == []
    assert list(result["counts"]) == ["myapp.block wait"], result  # slept in a call: wait
    assert 0.4 <= result["counts"]["myapp.block wait"] <= 0.7, result
    (line,) = result["lines"]  # one line for the block, with its stack
    assert line.startswith("event loop blocked 0.") and "by myapp.block (wait)" in line and "myapp:4 block" in line


# --- asyncio's debug mode: what it names -------------------------------------------------------

SLOW_CALLBACK = re.compile(r"Executing <Task .*?coro=<(?P<coro>[\w.]+)\(\).*?> took (?P<seconds>[\d.]+) seconds")


def slow_callbacks(tmp_path, loop: str, *flags: str) -> list[re.Match]:
    """examples/asyncio_debug.py with PYTHONASYNCIODEBUG=1, one GET /slow (0.3 s on the loop): its slow callbacks."""
    port, log_path = free_port(), tmp_path / f"debug-{loop}.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, str(ROOT / "examples/asyncio_debug.py"), "--port", str(port),
                                   "--loop", loop, *flags], env={**os.environ, "PYTHONASYNCIODEBUG": "1"},
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ok(f"http://127.0.0.1:{port}/healthz", server, log_path)
        assert get(f"http://127.0.0.1:{port}/slow", timeout=10)[0] == 200
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    return list(SLOW_CALLBACK.finditer(log_path.read_text()))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_asyncio_debug_mode_names_the_request_task_not_the_blocking_line(tmp_path, loop):
    (line,) = slow_callbacks(tmp_path, loop, "--in-lifespan")
    # under uvicorn a request is one task: the line names its request cycle, and how long it held the loop
    assert line["coro"] == "RequestResponseCycle.run_asgi" and 0.3 <= float(line["seconds"]) < 0.6, line[0]
    assert "blocking_call" not in line[0] and "asyncio_debug.py" not in line[0]  # not the handler, not the line


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="uvicorn passes debug=False to its own asyncio.run below 3.12")
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_pythonasynciodebug_alone_does_nothing_under_uvicorn_on_python_3_11(tmp_path, loop):
    assert slow_callbacks(tmp_path, loop) == []
