"""Start the lab's services as local processes on free loopback ports (tests and demo)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


# Under pytest-xdist each worker takes only the ports of its own residue class, so that two
# workers never hand out the same port between its release by bind(0) and its use. The class
# is of port // 2: Linux gives bind(0) ports of one parity, and port % 4 would leave two of
# four workers without any.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def free_port() -> int:
    """A free loopback port, never one this process (or another test worker) handed out before.

    The kernel may give a port it just released to the next bind(0), so two calls in a row
    can return the same port (seen: a receiver's PORT and METRICS_PORT alike).
    """
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT and (port // 2) % _WORKERS == _WORKER:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free loopback port that was not handed out already")


def pinned_to(cpus: Iterable[int] | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every thread it starts) to these cores; None: no pinning."""
    if not cpus:
        return None
    cores = set(cpus)
    return lambda: os.sched_setaffinity(0, cores)


def children(pid: int) -> list[int]:
    """The pids of the processes pid forked (gunicorn's workers, say), from /proc."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET url; the status and body, also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ok(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 20.0) -> None:
    """Poll url until it answers 200; RuntimeError with the process's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if get(url, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g}s:\n{log_path.read_text()}")


def sender_once(
    receiver_url: str, timeout: float = 60, args: Sequence[str] = (), cpus: Iterable[int] | None = None, **env: str
) -> subprocess.CompletedProcess:
    """`python -m sender --once [args]` against receiver_url: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "sender", "--once", *args],
        cwd=ROOT,
        env={**os.environ, "RECEIVER_URL": receiver_url, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pinned_to(cpus),
    )


@dataclass
class Service:
    """One service (`python -m <module>`) running as a child process, logging to a file."""

    module: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    cpus: set[int] | None = None  # pin the process (and every thread it starts) to these cores
    wrapper: Sequence[str] = ()  # a command the process runs under (valgrind, say)
    _popen: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def process(self) -> subprocess.Popen:
        """The child process; RuntimeError before start()."""
        if self._popen is None:
            raise RuntimeError(f"{self.module}: start() first")
        return self._popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> Service:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                [*self.wrapper, sys.executable, "-m", self.module], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=pinned_to(self.cpus),
            )
        return self

    def wait_healthy(self, timeout: float = 20.0) -> Service:
        wait_ok(f"{self.url}/healthz", self.process, self.log_path, timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        if self._popen is None or self._popen.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
