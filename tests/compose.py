"""The compose lab driven from the tests: its project, its services, what it needs to run here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from lab import model
from tests.conftest import STRICT
from tools.processes import ROOT, free_port

SERVICES = ["upstream", "receiver", "sender", "prometheus"]  # all but grafana: no registry here has it
COMPARE = [f"receiver-{mode}" for mode in model.MODES] + ["sender-compare"]


BASE_IMAGES = ("PYTHON_IMAGE", "PROMETHEUS_IMAGE")  # what the build and the stack need besides this repository
# The stand-in that scripts/offline-images.sh builds for each, by the name it gives it (read from the script).
OFFLINE_SCRIPT = ROOT / "scripts/offline-images.sh"
STAND_IN_TAGS = {"PYTHON_IMAGE": "PYTHON_TAG", "PROMETHEUS_IMAGE": "PROMETHEUS_TAG"}
# The images the lab builds, one per Python service, tagged by LAB_IMAGE_TAG (a test's: its project).
BUILT = ("upstream", "receiver", "sender")


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


def stand_in(variable: str) -> str:
    """The name scripts/offline-images.sh gives the stand-in for a base-image variable."""
    found = re.search(rf"^{STAND_IN_TAGS[variable]}=(\S+)$", OFFLINE_SCRIPT.read_text(), re.MULTILINE)
    if found is None:
        raise KeyError(f"{OFFLINE_SCRIPT.name} sets no {STAND_IN_TAGS[variable]}")
    return found[1]


def _present(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30).returncode == 0


def base_images(environ: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """({variable: image} to build and run on, [images missing]) on this engine.

    A variable the environment sets is used as it is. .env's pinned image is used where the
    engine has it, else scripts/offline-images.sh's stand-in where that is here: `make test`
    finds the offline images by itself, with no variable exported.
    """
    chosen, missing = {}, []
    for variable in BASE_IMAGES:
        chosen[variable] = image = pinned(variable, environ)
        if _present(image):
            continue
        if environ.get(variable):
            missing.append(image)
        elif _present(offline := stand_in(variable)):
            chosen[variable] = offline
        else:
            missing.append(f"{image} (or its stand-in {offline})")
    return chosen, missing


def images_missing(environ: dict[str, str]) -> str | None:
    """Why the lab's images cannot be built here (a base image is not on this engine), or None.

    The tests never pull: `docker pull` does where a registry can be reached, and
    scripts/offline-images.sh builds stand-ins where none can (one line says which to run).
    """
    missing = base_images(environ)[1]
    if not missing:
        return None
    pulls = " && ".join(f"docker pull {image.split()[0]}" for image in missing)
    return (f"this Docker engine lacks {', '.join(missing)}: run `{pulls}` where a registry can be reached, "
            "or `scripts/offline-images.sh` where none can, then make test")


class Lab:
    """One test's compose project: its own name, ports and image tag (its project name), docker-compose.yml
    alone (a compose.override.yaml of the user's is not the tests'), on the base images this engine has.

    `down -v` ends the lab: it also removes the images the project built (`--rmi local`), so a test
    run leaves none behind; the steps in between reuse them (built once, by the first `build`).
    """

    def __init__(self, project: str, env: dict[str, str]):
        self.project = project
        self.env = {"LAB_IMAGE_TAG": project, **env}
        self._base: dict[str, str] | None = None

    def _environ(self, **env: str) -> dict[str, str]:
        if self._base is None:
            self._base = base_images({**os.environ, **self.env})[0]
        return {**os.environ, **self._base, **self.env, **env}

    def compose(self, *args: str, timeout: float = 300, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        if "down" in args and "-v" in args and "--rmi" not in args:
            args = (*args, "--rmi", "local")
        command = ["docker", "compose", "-f", "docker-compose.yml", "-p", self.project]
        done = subprocess.run([*command, *args], cwd=ROOT, env=self._environ(**env), capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            logs = subprocess.run([*command, "logs", "--tail", "30"], cwd=ROOT, env=self._environ(),
                                  capture_output=True, text=True).stdout
            raise AssertionError(f"docker compose {' '.join(args)}: exit {done.returncode}\n{done.stderr}\n{logs}")
        return done

    @property
    def images(self) -> list[str]:
        """The images this lab builds and runs: blocking-io-lab/<service>:<its project>."""
        return [f"blocking-io-lab/{service}:{self.env['LAB_IMAGE_TAG']}" for service in BUILT]

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
        """Whatever this project left on the engine: containers, networks, volumes, images."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"], ["images"]):
            out = subprocess.run(["docker", *kind, "-q", "--filter", label], capture_output=True, text=True).stdout
            found += [f"{kind[0]} {line}" for line in out.split()]
        found += [f"image {image}" for image in self.images if _present(image)]
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
