"""The compose lab driven from the tests: its project, its services, what it needs to run here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from lab import model
from tests.conftest import STRICT
from tools.processes import ROOT, free_port

SERVICES = ["upstream", "receiver", "sender", "prometheus"]  # all but grafana: no registry here has it
COMPARE = [f"receiver-{mode}" for mode in model.MODES] + ["sender-compare"]


BASE_IMAGES = ("PYTHON_IMAGE", "PROMETHEUS_IMAGE")  # what the build and the stack need besides this repository


def docker_ready() -> str | None:
    """Why Docker cannot be used here, or None if it can."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        return "docker compose (v2) is not installed"
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode:
        return "no Docker engine is running"
    return None


def dotenv() -> dict[str, str]:
    """.env's settings as committed: {key: value}."""
    pairs = (line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {key: value.strip() for key, value in pairs}


def pinned(variable: str, environ: dict[str, str]) -> str:
    """The image a base-image variable names: the environment's, else .env's."""
    if environ.get(variable):
        return environ[variable]
    if variable in (found := dotenv()):
        return found[variable]
    raise KeyError(f".env names no {variable}")


def images_missing(environ: dict[str, str]) -> str | None:
    """Why the lab's images cannot be built here (a base image is not on this engine), or None.

    The tests never pull: `docker compose pull` does where a registry can be reached, and
    scripts/offline-images.sh builds stand-ins where none can (one line says which to run).
    """
    missing = [name for name in (pinned(v, environ) for v in BASE_IMAGES)
               if subprocess.run(["docker", "image", "inspect", name], capture_output=True, timeout=30).returncode]
    if not missing:
        return None
    return (f"this Docker engine lacks {', '.join(missing)}: run `docker compose pull` where a registry can be "
            "reached, or `eval \"export $(scripts/offline-images.sh | tail -1)\"` where none can, then make test")


class Lab:
    def __init__(self, project: str, env: dict[str, str]):
        self.project = project
        self.env = env

    def compose(self, *args: str, timeout: float = 300, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["docker", "compose", "-p", self.project, *args], cwd=ROOT, env={**os.environ, **self.env, **env},
            capture_output=True, text=True, timeout=timeout,
        )
        if check and done.returncode:
            logs = subprocess.run(["docker", "compose", "-p", self.project, "logs", "--tail", "30"], cwd=ROOT,
                                  env={**os.environ, **self.env}, capture_output=True, text=True).stdout
            raise AssertionError(f"docker compose {' '.join(args)}: exit {done.returncode}\n{done.stderr}\n{logs}")
        return done

    def ids(self) -> dict[str, str]:
        out = self.compose("ps", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):
            rows = rows[0]
        return {row["Service"]: row["ID"] for row in rows}

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.env['HOST_PROMETHEUS_PORT']}"

    @property
    def receiver(self) -> str:
        return f"http://127.0.0.1:{self.env['HOST_RECEIVER_PORT']}"

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
            out = subprocess.run(["docker", *kind, "-q", "--filter", label], capture_output=True, text=True).stdout
            found += [f"{kind[0]} {line}" for line in out.split()]
        return found


def host_ports() -> dict[str, str]:
    """A free loopback port for every port compose publishes: a test's lab never meets the user's."""
    names = ["HOST_RECEIVER_PORT", "HOST_UPSTREAM_PORT", "HOST_PROMETHEUS_PORT", "HOST_GRAFANA_PORT",
             *(f"HOST_RECEIVER_{mode.upper()}_PORT" for mode in model.MODES)]
    return {name: str(free_port()) for name in names}


def require_docker() -> None:
    """Skip (fail under LAB_STRICT=1, as in CI) where the compose lab cannot run here."""
    reason = docker_ready() or images_missing(dict(os.environ))
    if reason:
        if STRICT:
            pytest.fail(f"{reason}; LAB_STRICT=1 makes this a failure (see .ci/run)")
        pytest.skip(reason)
