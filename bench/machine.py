"""What the benchmark ran on: cores, CPU, Python, library versions, tools, pinning."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata

from bench.results import Machine
from tools.processes import ROOT

PACKAGES = ["aiohttp", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "requests", "urllib3",
            "prometheus-client", "pydantic", "pydantic-settings", "hdrhistogram", "locust", "matplotlib"]


def cores() -> dict[str, list[int]] | None:
    """Server on one core, load generators on another: None where there are fewer than two."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None
    return {"server": [usable[0]], "load": [usable[1]]}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)  # prints its version, exits 1
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def describe() -> Machine:
    return Machine(cpus=os.cpu_count(), cpu_model=cpu_model(), python=platform.python_version(),
                   platform=platform.platform(), packages={name: version(name) for name in PACKAGES},
                   wrk=wrk_version(), git=git_commit(), pinning=cores())
