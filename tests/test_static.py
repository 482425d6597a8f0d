"""The compose lab's files, checked without running it: compose, images, Prometheus, Grafana."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from pydantic_settings import BaseSettings

from lab import model
from receiver.settings import Settings as ReceiverSettings
from sender.settings import Settings as SenderSettings
from tests.compose import dotenv
from tests.conftest import STRICT, require_tool
from tools import dashboard
from tools.processes import ROOT, free_port
from upstream.settings import Settings as UpstreamSettings

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
CONTAINERS = {name: service for name, service in COMPOSE["services"].items() if "provider" not in service}
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVICES: dict[str, type[BaseSettings]] = {"upstream": UpstreamSettings, "receiver": ReceiverSettings,
                                           "sender": SenderSettings}
PYTHON_SERVICES = list(SERVICES)
COMPARE = [f"receiver-{mode}" for mode in model.MODES] + ["sender-compare"]
# Every compose service that runs a Python service's image, and which service's knobs it takes.
RUNS = {"upstream": "upstream", "receiver": "receiver", "sender": "sender", "sender-compare": "sender",
        **{f"receiver-{mode}": "receiver" for mode in model.MODES}}
# Set by compose itself, not knobs: where to listen and where the next hop is.
WIRING = {"HOST", "PORT", "METRICS_PORT", "UPSTREAM_URL", "RECEIVER_URL", "PROMETHEUS_MULTIPROC_DIR"}
# The services that build an image; the other Python services run one of theirs.
BUILDS = [name for name, service in COMPOSE["services"].items() if "build" in service]
EXPOSED = {"upstream": "8001 9001", "receiver": "8000 9000", "sender": "9002"}  # PORT and METRICS_PORT
PUBLISHED = re.compile(r"^127\.0\.0\.1:\$\{HOST_([A-Z_]+)_PORT:-(\d+)\}:(\d+)$")
PINNED = re.compile(r"^[\w./-]+:(v?\d+\.\d+\.\d+)[\w.-]*$")  # a tag with a full version, never latest


def image_of(service: str) -> str:
    """The name and tag of the image a Python service runs, as compose gives it."""
    return f"blocking-io-lab/{service}:${{LAB_IMAGE_TAG:-dev}}"


def knobs(service: str) -> set[str]:
    return {name.upper() for name in SERVICES[service].model_fields} - WIRING


def test_compose_file_follows_the_rules():
    assert "version" not in COMPOSE
    assert set(COMPOSE["services"]) == {"lab", "upstream", "receiver", "sender", "prometheus", "grafana", *COMPARE}
    for name, service in CONTAINERS.items():
        assert "container_name" not in service, name
        assert "healthcheck" in service and service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for port in service.get("ports", []):
            assert PUBLISHED.match(port), f"{name} publishes {port}: not on 127.0.0.1, or not HOST_<NAME>_PORT"
        for dependency, condition in service.get("depends_on", {}).items():
            # a container waits for its dependencies to be healthy; `lab` (the settings check) is none
            wanted = "service_started" if dependency == "lab" else "service_healthy"
            assert condition == {"condition": wanted}, name
    env = dotenv()
    published = {s: [PUBLISHED.match(p).groups() for p in c.get("ports", [])] for s, c in COMPOSE["services"].items()}
    expected = {"upstream": "8001", "receiver": "8000", "prometheus": "9090", "grafana": "3000"}
    for service, port in expected.items():
        assert published[service] == [(service.upper(), port, port)]
        assert env[f"HOST_{service.upper()}_PORT"] == port
    assert published["sender"] == []
    for i, mode in enumerate(model.MODES):  # the compare receivers, for python -m bench --receivers
        assert published[f"receiver-{mode}"] == [(f"RECEIVER_{mode.upper()}", str(8010 + i), "8000")]
        assert env[f"HOST_RECEIVER_{mode.upper()}_PORT"] == str(8010 + i)
    assert published["sender-compare"] == []


def test_every_container_is_hardened_limited_and_rotates_its_logs():
    for name, service in CONTAINERS.items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("logging") == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}, name
        assert 0 < float(service.get("cpus", 0)) <= 2, name
        assert re.fullmatch(r"\d+[mg]", str(service.get("mem_limit", ""))), name
        assert service.get("read_only") is True, f"{name}: root filesystem writable"
        user = service.get("user")
        assert user is None or str(user).split(":")[0] not in ("0", "root"), name
    # The images that are not ours name their (non-root) user here, so the check above sees it.
    assert COMPOSE["services"]["prometheus"]["user"] == "65534:65534"
    assert COMPOSE["services"]["grafana"]["user"] == "472"
    # Grafana on a read-only root (it cannot run here): kube-prometheus's recipe, /tmp in memory, console logs
    grafana = COMPOSE["services"]["grafana"]
    assert "/tmp" in grafana["tmpfs"] and grafana["environment"]["GF_LOG_MODE"] == "console"
    assert any(volume.endswith(":/var/lib/grafana") for volume in grafana["volumes"])
    for name in ("receiver", "upstream"):  # drained on docker stop before the SIGKILL (tests/test_shutdown.py)
        assert COMPOSE["services"][name]["stop_grace_period"] == "310s"


def test_hadolint_finds_nothing_in_the_dockerfiles():
    hadolint = shutil.which("hadolint", path=str(ROOT / ".venv/bin")) or require_tool("hadolint")
    done = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr


def test_yamllint_finds_nothing_in_the_yaml():
    files = subprocess.run(["git", "ls-files", "*.yml", "*.yaml", ".*.yaml"], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    assert "docker-compose.yml" in files and "prometheus/prometheus.yml" in files
    done = subprocess.run([sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", *files], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_profiles_single_by_default_and_compare_side_by_side():
    profiles = {name: service.get("profiles", []) for name, service in COMPOSE["services"].items()}
    assert profiles == {"lab": [], "upstream": [], "prometheus": [], "grafana": [], "receiver": ["single"],
                        "sender": ["single"], **{name: ["compare"] for name in COMPARE}}
    assert dotenv()["COMPOSE_PROFILES"] == "single"
    services = COMPOSE["services"]
    for mode in model.MODES:
        assert services[f"receiver-{mode}"]["environment"]["RECEIVER_MODE"] == mode
    targets = services["sender-compare"]["environment"]["RECEIVER_URL"].split(",")
    assert targets == [f"http://receiver-{mode}:8000" for mode in model.MODES]
    assert set(services["sender-compare"]["depends_on"]) == {f"receiver-{mode}" for mode in model.MODES}
    # Prometheus finds receivers and senders by these aliases, in both profiles.
    for name in ("receiver", *(f"receiver-{mode}" for mode in model.MODES)):
        assert services[name]["networks"]["default"]["aliases"] == ["receivers"], name
    for name in ("sender", "sender-compare"):
        assert services[name]["networks"]["default"]["aliases"] == ["senders"], name


def test_every_image_is_pinned_and_overridable():
    env = dotenv()
    defaults = {
        "PYTHON_IMAGE": re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)[1],
        "PROMETHEUS_IMAGE": COMPOSE["services"]["prometheus"]["image"],
        "GRAFANA_IMAGE": COMPOSE["services"]["grafana"]["image"],
    }
    for variable, default in defaults.items():
        match = re.fullmatch(r"\$\{" + variable + r":-(.+)\}", default) if default.startswith("$") else None
        image = match[1] if match else default
        assert PINNED.match(image), f"{variable}: {image} is not pinned to a version"
        assert env[variable] == image, f".env's {variable} differs from the default {image}"
    for service in BUILDS:
        args = COMPOSE["services"][service]["build"]["args"]
        assert args["PYTHON_IMAGE"] == f"${{PYTHON_IMAGE:-{env['PYTHON_IMAGE']}}}", service


def test_each_image_is_built_once_per_profile_and_named():
    # The compare profile's five receivers run one image: one service per profile builds it (compose
    # would build it once per service that says `build`, leaving the extra copies behind untagged).
    services = COMPOSE["services"]
    for name, service in RUNS.items():
        assert services[name]["image"] == image_of(service), name
        assert services[name]["pull_policy"] == "never", f"{name}: its image is in no registry"
    for profiles in (["single"], ["compare"]):
        active = [name for name in RUNS if services[name].get("profiles", []) in ([], profiles)]
        building = [services[name]["image"] for name in active if name in BUILDS]
        assert sorted(building) == sorted({services[name]["image"] for name in active}), (profiles, building)
    for name in BUILDS:  # the Dockerfile's target for the service it runs, SERVICE naming the same one
        build = services[name]["build"]
        assert build["context"] == "." and "dockerfile" not in build, name
        assert build["target"] == build["args"]["SERVICE"] == RUNS[name], name


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_dockerfile_pins_installs_first_and_drops_root(service):
    # One Dockerfile: a stage that installs a service (SERVICE) and a small target per service.
    lines = [line for line in DOCKERFILE.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("ARG PYTHON_IMAGE=") and lines[1] == "FROM ${PYTHON_IMAGE} AS service"
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    assert "COPY constraints.txt ${SERVICE}/requirements.txt /tmp/deps/" in lines[:install]
    assert lines[install] == "RUN pip install -r /tmp/deps/requirements.txt -c /tmp/deps/constraints.txt"
    code = lines.index("COPY ${SERVICE}/ ${SERVICE}/")
    assert install < code, "dependencies must be installed before the code is copied"
    # only lab/ and the service's own package go in: never the other services, tests or tooling
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY")]
    assert copies == [["constraints.txt", "${SERVICE}/requirements.txt"], ["lab/"], ["${SERVICE}/"]], copies
    assert "USER 10001" in lines[code:]
    stage = lines[lines.index(f"FROM service AS {service}") + 1:]
    stage = stage[:next((i for i, line in enumerate(stage) if line.startswith("FROM")), len(stage))]
    assert stage == [f"EXPOSE {EXPOSED[service]}", f'CMD ["python", "-m", "{service}"]'], stage  # exec form
    assert not (ROOT / service / "Dockerfile").exists(), "the one Dockerfile is at the repository's root"
    assert (ROOT / ".dockerignore").exists()


def test_dockerignore_sends_only_what_the_images_copy():
    rules = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*" and set(rules[1:]) >= {"!constraints.txt", "!lab/", *(f"!{s}/" for s in PYTHON_SERVICES)}
    assert all(not rule.startswith("!") for rule in rules if rule.lstrip("!").rstrip("/") not in
               {"constraints.txt", "lab", *PYTHON_SERVICES}), rules


def test_every_container_waits_for_the_settings_check_which_sees_what_they_get():
    # `up` runs scripts/lab-provider for `lab` (a provider service) before any container: it parses
    # the environment the containers will get, from the same anchors, in every image the lab builds.
    services = COMPOSE["services"]
    provider = services["lab"]["provider"]
    script = ROOT / provider["type"]
    assert provider["type"].startswith("./scripts/") and script.is_file() and os.access(script, os.X_OK)
    options = provider["options"]
    assert options["image"] == [image_of(service) for service in PYTHON_SERVICES]
    for name in RUNS:
        passed = dict(services[name]["environment"])
        if name.startswith("receiver-"):
            passed.pop("RECEIVER_MODE")  # the compare receivers' own, fixed mode
        passed.pop("RECEIVER_URL", None)  # each sender's own receivers
        assert {k: v for k, v in options.items() if k in passed} == passed, name

    # Every container waits for it (directly or through its dependencies): `up` checks first, and
    # `down` takes `lab` last, when it removes the containers of the other profile.
    def waits_for_lab(name: str) -> bool:
        return any(dep == "lab" or waits_for_lab(dep) for dep in services[name].get("depends_on", {}))

    assert [name for name in CONTAINERS if not waits_for_lab(name)] == []


@pytest.mark.parametrize("name", list(RUNS))
def test_env_file_lists_every_knob_and_compose_passes_it(name, monkeypatch):
    service = RUNS[name]
    env = dotenv()
    missing = knobs(service) - set(env)
    assert not missing, f".env lacks {missing}"
    passed = COMPOSE["services"][name]["environment"]
    fixed = {"RECEIVER_MODE"} if name.startswith("receiver-") else set()  # the compare receivers' own mode
    for knob in knobs(service) - fixed:
        assert passed[knob] == f"${{{knob}:-}}", f"compose does not pass {knob} to {name}"
    # every value in .env is one the service accepts
    for knob in knobs(service):
        monkeypatch.setenv(knob, env[knob])
    SERVICES[service]()


def test_prometheus_config_scrapes_the_three_services():
    config = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    interval = float(config["global"]["scrape_interval"].rstrip("s"))
    timeout = float(config["global"]["scrape_timeout"].rstrip("s"))
    assert 1 <= interval <= 2 and timeout < interval
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"sender", "receiver", "upstream"}
    assert jobs["upstream"]["static_configs"] == [{"targets": ["upstream:9001"]}]
    # receivers and senders by their network aliases: one or four, whichever profile runs
    for job, alias, port in (("receiver", "receivers", 9000), ("sender", "senders", 9002)):
        (dns,) = jobs[job]["dns_sd_configs"]
        assert (dns["names"], dns["type"], dns["port"]) == ([alias], "A", port)


def test_promtool_accepts_the_prometheus_config():
    promtool = require_tool("promtool")
    checked = subprocess.run([promtool, "check", "config", "prometheus/prometheus.yml"], cwd=ROOT,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_config_is_valid():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        if STRICT:
            pytest.fail("docker compose is not installed; LAB_STRICT=1 makes this a failure")
        pytest.skip("docker compose is not installed")
    # docker-compose.yml alone: a compose.override.yaml beside it (scripts/offline-images.sh's) is the machine's
    checked = subprocess.run([docker, "compose", "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT,
                             capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr


def test_committed_dashboard_is_what_the_code_writes():
    assert (ROOT / "grafana/dashboards/lab.json").read_text() == dashboard.render(), (
        "grafana/dashboards/lab.json is stale: run python -m tools.dashboard"
    )


def test_dashboard_is_provisioned_by_uid():
    board = json.loads((ROOT / "grafana/dashboards/lab.json").read_text())
    text = json.dumps(board)
    assert board["uid"] == "blocking-io-lab" and "${DS_" not in text and "__inputs" not in board
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for panel in board["panels"]:
        if panel["type"] != "text":
            assert panel["datasource"]["uid"] == uid and panel["description"], panel["title"]
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/lab.yml").read_text())
    home = COMPOSE["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["providers"][0]["options"]["path"] + "/lab.json"
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_grafana_is_anonymous_viewer_and_never_admin_admin():
    env = COMPOSE["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert dotenv()["GRAFANA_ADMIN_PASSWORD"] not in ("", "admin")


def test_dashboard_shows_every_part_of_the_story():
    exprs = " ".join(dashboard.expressions(dashboard.build()))
    for metric in ["receiver_info", "sender_requests_total", "receiver_http_requests_total",
                   "upstream_http_requests_total", "sender_request_duration_seconds",
                   "upstream_http_requests_in_flight", "receiver_http_requests_in_flight",
                   "_event_loop_blocked_peak_seconds", "_event_loop_lag_seconds", "sender_burst_makespan_seconds",
                   "sender_burst_predicted_makespan_seconds", "receiver_upstream_call_duration_seconds", "up"]:
        assert metric in exprs, metric
    assert "rate(" in exprs and "$__rate_interval" in exprs


def test_readme_links_resolve_in_the_repository():
    # Relative links (the seed, the code, the benchmark's run) must work from a fresh clone.
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", readme)
    assert "docs/seed.md" in targets
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README links to files that are not in the repository: {missing}"


def test_free_ports_are_never_handed_out_twice():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_readme_names_only_panels_the_dashboard_has():
    # The tour quotes panel titles in *italics*: each must be (the start of) a real title.
    titles = [p["title"] for p in dashboard.build()["panels"] if p["title"]]
    tour = (ROOT / "README.md").read_text().split("### A tour", 1)[1].split("### Without a registry", 1)[0]
    quoted = [" ".join(q.split()) for q in re.findall(r"(?<!\*)\*([A-Z][^*]+)\*(?!\*)", tour)]
    assert quoted, "the tour names no panel"
    unknown = [q for q in quoted if not any(title.startswith(q) for title in titles)]
    assert not unknown, f"the README's tour names panels the dashboard does not have: {unknown}"


def test_dashboard_is_built_with_the_grafana_sdk_build_for_the_pinned_grafana():
    # tools/dashboard.py builds the JSON with grafana-foundation-sdk, at the build for Grafana 11.4: the
    # Grafana that compose runs. A plain install would pick another build (10.1), another schema.
    from importlib.metadata import version

    from grafana_foundation_sdk.models.dashboard import Dashboard

    pin = "1769699520!11.4.0"
    assert version("grafana-foundation-sdk") == pin
    requirements = [line.split("#")[0].strip() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()]
    assert f"grafana-foundation-sdk=={pin}" in requirements
    assert f"grafana_foundation_sdk=={pin}" in (ROOT / "constraints.txt").read_text().splitlines()
    grafana = re.search(r"grafana/grafana:(\d+\.\d+)\.", COMPOSE["services"]["grafana"]["image"])
    assert grafana and pin.split("!")[1].startswith(grafana.group(1) + "."), "the SDK's build is not the Grafana's"
    assert isinstance(dashboard.board().build(), Dashboard)
    assert dashboard.build()["schemaVersion"] == 39  # classic dashboard JSON, as file provisioning reads it


def test_no_function_outside_the_tests_is_longer_than_60_lines():
    """A function that does not fit on a screen does more than one thing: split it."""
    sources = [p for top in ("upstream", "receiver", "sender", "lab", "models", "bench", "tools", "examples")
               for p in (ROOT / top).rglob("*.py")]
    assert len(sources) > 30, sources
    long = [f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for p in sources for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (node.end_lineno or node.lineno) - node.lineno + 1 > 60]
    assert not long, long
