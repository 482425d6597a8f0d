"""Start the lab's services for a benchmark step, and run the sender once, pinned to cores."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.processes import Service, sender_once


class BenchError(RuntimeError):
    """A step that could not be measured: the benchmark stops and says why."""


class Services:
    """Upstream and receivers as local processes on free loopback ports, all stopped together."""

    def __init__(self, logs: Path, cpus: dict[str, list[int]] | None):
        self.logs = logs
        self.cpus = cpus
        self.started: list[Service] = []
        self.count = 0  # every service a log file of its own, also after others stopped

    def start(self, module: str, role: str | None, **env: str) -> Service:
        """role: "server" (the core under test), "load" (upstream and load generators), None (not pinned)."""
        service = self.start_unchecked(module, role, **env)
        try:
            return service.wait_healthy(timeout=30)
        except RuntimeError as exc:
            raise BenchError(f"{module} did not start: {exc}") from None

    def start_unchecked(self, module: str, role: str | None, **env: str) -> Service:
        """start() without waiting for /healthz: for a service that serves none (the sender)."""
        cpus = set(self.cpus[role]) if self.cpus and role else None
        self.count += 1
        name = f"{module.rsplit('.', 1)[-1]}-{self.count}"
        service = Service(module, {"LOG_LEVEL": "warning", **env}, self.logs / f"{name}.log", cpus=cpus)
        self.started.append(service)
        return service.start()

    def stop(self, service: Service) -> None:
        service.stop()
        self.started.remove(service)

    def stop_all(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()


@contextmanager
def services(logs: Path, cpus: dict[str, list[int]] | None) -> Iterator[Services]:
    running = Services(logs, cpus)
    try:
        yield running
    finally:
        running.stop_all()


def sender(receivers: list[str], out: Path, cpus: list[int] | None, timeout: float, **env: str) -> dict[str, Any]:
    """`python -m sender --once --json out` against the receivers; its JSON, or BenchError."""
    try:
        done = sender_once(",".join(receivers), timeout=timeout, args=("--json", str(out)), cpus=cpus,
                           **{"PYTHONUNBUFFERED": "1", "LOG_LEVEL": "warning", **env})
    except subprocess.TimeoutExpired:
        raise BenchError(f"the sender did not finish within {timeout:g} s ({env})") from None
    if not out.exists():
        raise BenchError(f"the sender wrote no results (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(out.read_text())
