"""The whole lab in containers, for real: build, `up --wait`, every mode, the dashboard, `down -v`.

Needs a Docker engine with Compose 2.36 or later (the settings check is a provider service).
Without one these tests skip, or fail under LAB_STRICT=1 (as in CI). The base images: PYTHON_IMAGE
and PROMETHEUS_IMAGE from the environment, else .env's pinned ones where this engine has them,
else the stand-ins scripts/offline-images.sh builds (tests/compose.py finds them by name). The
lab's own images are built once, tagged with the test's project, and removed by its `down -v`.
Grafana is not started: no registry here has it; its provisioning is checked statically and
its every query runs against this Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import pytest

from lab import model
from tests.compose import (
    BASE_IMAGES,
    COMPARE,
    SERVICES,
    Lab,
    base_images,
    docker_ready,
    host_ports,
    images_missing,
    pinned,
    require_docker,
    stand_in,
)
from tests.conftest import STRICT, Samples, eventually, samples, value
from tests.dashboard_check import board, instant, missing_data, missing_modes
from tools import snapshot
from tools.processes import ROOT, get

N, D = 4, 0.5
TASKS = "/tasks/{name}"


@pytest.fixture(scope="module")
def lab():
    require_docker()
    env = {
        **host_ports(),
        "RECEIVER_MODE": "sync",
        "UPSTREAM_DELAY": str(D),
        "SENDER_CONCURRENCY": str(N),
        "SENDER_INTERVAL": "300",  # one burst at start, then quiet: the mode tests send their own
    }
    lab = Lab(f"labtest{os.getpid()}", env)
    try:
        lab.compose("build", timeout=900)
        lab.compose("up", "-d", "--wait", *SERVICES, timeout=300)
        yield lab
    finally:
        lab.compose("down", "-v", "--remove-orphans", timeout=120, check=False)


def burst(lab: Lab) -> tuple[str, float, float, list[float]]:
    """One burst from inside the sender's container: mode, makespan, predicted, answer times."""
    out = lab.compose("exec", "-T", "sender", "python", "-m", "sender", "--once", timeout=120).stdout
    summary = re.search(r"makespan=([\d.]+)s mode=(\w+) predicted=([\d.]+)s .* failed=0", out)
    assert summary, out
    answers = [float(t) for t in re.findall(r"^task\d+\s+\+0\.000s\s+\+([\d.]+)s\s+200$", out, re.MULTILINE)]
    assert len(answers) == N, out
    for name in (f"task{i}" for i in range(1, N + 1)):
        assert f"--- {name} Send!!" in out and f"--- {name} status = 200" in out
    return summary[2], float(summary[1]), float(summary[3]), sorted(answers)


def test_missing_images_skip_with_one_line_saying_what_to_run():
    reason = docker_ready()
    if reason:
        (pytest.fail if STRICT else pytest.skip)(reason)
    bogus = {**os.environ, "PYTHON_IMAGE": "lab-test/never-built:0", "PROMETHEUS_IMAGE": "lab-test/never-built:1"}
    reason = images_missing(bogus)
    assert reason is not None and "\n" not in reason, reason
    for part in ("lab-test/never-built:0, lab-test/never-built:1", "docker pull lab-test/never-built:0",
                 "scripts/offline-images.sh"):
        assert part in reason, reason
    if STRICT:  # CI built the stand-ins first: nothing is missing, and the lab tests below run
        assert images_missing(dict(os.environ)) is None


def test_without_the_pinned_images_the_tests_find_the_stand_ins_by_themselves():
    # make test with no variable exported: .env's pinned images where this engine has them, else
    # scripts/offline-images.sh's stand-ins, found by the names the script gives them.
    if reason := docker_ready():
        (pytest.fail if STRICT else pytest.skip)(reason)
    clean = {k: v for k, v in os.environ.items() if k not in BASE_IMAGES}
    chosen, missing = base_images(clean)
    for variable, image in chosen.items():
        assert image in (pinned(variable, clean), stand_in(variable)), (variable, image)
    if STRICT:  # CI ran scripts/offline-images.sh (or can pull): nothing is missing
        assert missing == []


def test_offline_override_keeps_grafana_out_and_builds_on_the_stand_ins(tmp_path):
    # The one offline step: scripts/offline-images.sh also writes compose.override.yaml (here elsewhere).
    require_docker()
    standins = {variable: stand_in(variable) for variable in BASE_IMAGES}
    if any(subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode
           for image in standins.values()):
        pytest.skip("the offline stand-ins are not on this engine (it has the pinned images): nothing to check here")
    override = tmp_path / "compose.override.yaml"
    done = subprocess.run([str(ROOT / "scripts/offline-images.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "LAB_OVERRIDE": str(override)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == " ".join(f"{v}={image}" for v, image in standins.items())
    for profile in ("single", "compare"):
        env = {k: v for k, v in os.environ.items() if k not in BASE_IMAGES}  # as a user runs it: nothing exported
        config = json.loads(subprocess.run(
            ["docker", "compose", "-f", "docker-compose.yml", "-f", str(override), "--profile", profile, "config",
             "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
        services = config["services"]
        assert "grafana" not in services and services["prometheus"]["image"] == standins["PROMETHEUS_IMAGE"]
        builds = {name: s["build"] for name, s in services.items() if "build" in s}
        assert builds and all(b["args"]["PYTHON_IMAGE"] == standins["PYTHON_IMAGE"] for b in builds.values()), builds
        # one service builds each image; every Python service runs one of those
        built = [services[name]["image"] for name in builds]
        assert len(built) == len(set(built)) == 3, built
        assert {s["image"] for name, s in services.items() if "provider" not in s} - {services["prometheus"]["image"]} \
            == set(built)
    # and it never replaces an override that is not its own
    override.write_text("services: {}\n")
    done = subprocess.run([str(ROOT / "scripts/offline-images.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "LAB_OVERRIDE": str(override)}, timeout=120)
    assert done.returncode == 2 and override.read_text() == "services: {}\n", done.stderr


def test_lab_comes_up_healthy(lab):
    status = lab.compose("ps", "--format", "{{.Service}} {{.Health}}").stdout.split("\n")
    assert sorted(line for line in status if line) == sorted(f"{s} healthy" for s in SERVICES)
    assert get(f"{lab.receiver}/healthz")[0] == 200
    # built once: one image per service, named for this project, nothing left untagged
    for image in lab.images:
        assert subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0, image
    dangling = subprocess.run(["docker", "images", "-q", "--filter", "dangling=true", "--filter",
                               f"label=com.docker.compose.project={lab.project}"], capture_output=True, text=True)
    assert dangling.stdout.split() == []


def test_a_bad_setting_stops_up_with_the_services_own_line(lab):
    # RECEIVER_MODE=blocking docker compose up -d --wait: up's own output ends with the receiver's
    # line, and no container was created or replaced (no restart loop; the lab that runs keeps running).
    before = lab.ids()
    done = lab.compose("up", "-d", "--wait", *SERVICES, RECEIVER_MODE="blocking", check=False, timeout=120)
    line = ("receiver: bad configuration: RECEIVER_MODE='blocking': "
            "Input should be 'sync', 'async', 'mixed', 'threaded' or 'def'")
    assert done.returncode != 0 and done.stderr.rstrip().endswith(line), done.stderr
    assert lab.ids() == before
    assert get(f"{lab.receiver}/healthz")[0] == 200
    # every service's settings are checked, each in its own words
    done = lab.compose("up", "-d", "--wait", *SERVICES, UPSTREAM_ERROR_RATE="2", SENDER_CONCURRENCY="x",
                       check=False, timeout=120)
    assert done.returncode != 0 and "upstream: bad configuration: UPSTREAM_ERROR_RATE='2'" in done.stderr
    assert "sender: bad configuration: SENDER_CONCURRENCY='x'" in done.stderr, done.stderr
    assert lab.ids() == before


@pytest.mark.parametrize("mode", model.MODES)
def test_every_mode_in_containers_matches_the_model(lab, mode):
    before = lab.ids()
    lab.compose("up", "-d", "--wait", *SERVICES, RECEIVER_MODE=mode, timeout=180)
    after = lab.ids()
    changed = sorted(s for s in SERVICES if before.get(s) != after.get(s))
    # the lab starts in sync; every other mode recreates the receiver, and only it
    assert changed == ([] if mode == "sync" else ["receiver"]), f"switching RECEIVER_MODE recreated {changed}"
    info = json.loads(get(f"{lab.receiver}/info")[1])
    assert info["mode"] == mode and info["upstream"]["delay"] == D

    got_mode, makespan, predicted, answers = burst(lab)
    caps = model.Caps.from_info(info)
    assert got_mode == mode and predicted == pytest.approx(model.makespan(mode, N, D, caps), abs=0.001)
    for measured, expected in zip(answers + [makespan], model.completion_times(mode, N, D, caps) + [predicted]):
        assert expected * 0.8 - 0.3 <= measured <= expected * 1.2 + 0.3, (mode, answers, makespan)

    # The mode shows in Prometheus (and so on the dashboard) within a minute.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        modes = [s["metric"]["mode"] for s in instant(lab.prometheus, "max by (mode) (receiver_info)")]
        if modes == [mode]:
            break
        time.sleep(1)
    assert modes == [mode]


def metrics_in(lab: Lab, service: str, port: int) -> Samples:
    """A service's /metrics as its process serves it now, read inside its container (exact: no scrape)."""
    read = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    return samples(lab.compose("exec", "-T", service, "python", "-c", read, timeout=60).stdout)


def receiver_counts(lab: Lab) -> dict[str, float]:
    """The async receiver's GET /tasks answers (200, 502) and its upstream calls (ok, error) so far."""
    found = metrics_in(lab, "receiver", 9000)
    answers = {status: value(found, "receiver_http_requests_total", mode="async", route=TASKS, status=status)
               for status in ("200", "502")}
    calls = {outcome: value(found, "receiver_upstream_call_duration_seconds_count", client="aiohttp", outcome=outcome)
             for outcome in ("ok", "error")}
    return {**answers, **calls}


def test_upstream_killed_under_a_steady_rate_turns_into_502s_and_back(lab):
    """docker compose kill upstream while the sender offers 20 requests/s to an async receiver,
    then up again: 502s within milliseconds while it is down, 200s within a healthcheck
    interval of it being back, every request counted alike by the sender and the receiver."""
    rate, most, interval = 20, 120, 3.0  # most: the run's bound; interval: upstream's healthcheck (docker-compose.yml)
    lab.compose("up", "-d", "--wait", *SERVICES, RECEIVER_MODE="async", timeout=180)
    lab.compose("stop", "sender", timeout=60)  # only this test's requests from here on
    before = receiver_counts(lab)
    run: list[subprocess.CompletedProcess] = []
    sender = f"{lab.project}-steady-sender"
    sending = threading.Thread(target=lambda: run.append(lab.compose(
        "run", "--rm", "--no-deps", "--name", sender, "-e", f"SENDER_RATE={rate}", "-e", f"SENDER_DURATION={most}",
        "sender", "python", "-m", "sender", "--once", "--json", "/dev/stdout", timeout=most + 120)))
    sending.start()
    eventually(lambda: receiver_counts(lab)["200"] >= before["200"] + 2 * rate, 30, "the steady rate answered")
    killing = time.time()
    lab.compose("kill", "upstream", timeout=60)
    dead = time.time()
    eventually(lambda: receiver_counts(lab)["502"] >= before["502"] + 2 * rate, 30, "the receiver answering 502s")
    down = receiver_counts(lab)  # no call can succeed now: the ok calls upstream answered before it died
    starting = time.time()
    lab.compose("up", "-d", "--wait", "upstream", timeout=120)
    back = time.time()
    answered = receiver_counts(lab)["200"]
    # the run goes on until 2 s of answers after one healthcheck interval, then is stopped
    # (SIGTERM: it sends nothing more, waits for what is in flight, and writes its records)
    eventually(lambda: time.time() > back + interval + 2 and receiver_counts(lab)["200"] > answered + rate * 4,
               60, "answers again, a healthcheck interval and more after upstream's return")
    subprocess.run(["docker", "kill", "--signal", "TERM", sender], check=True, capture_output=True, timeout=30)
    sending.join()

    document = next(json.loads(line) for line in run[0].stdout.splitlines() if line.startswith('{"sender_version"'))
    target = document["targets"][0]
    assert target["scheduled"] == target["sent"] > rate * (back - killing) and target["dropped"] == 0, target
    assert set(target["answered"]) == {"200", "502"}, target["answered"]  # every request answered, none cut
    sent = [(document["started_at"] + offset, seconds, status) for offset, seconds, status, _ in target["records"]]
    # Before the kill (and its calls' D), 200s; while upstream is down, 502s in milliseconds (half
    # within 50 ms, each in well under the D a call would take); from one healthcheck interval
    # after compose has it healthy again, 200s.
    assert {status for at, _, status in sent if at < killing - D - 0.1} == {200}
    outage = [(status, seconds) for at, seconds, status in sent if dead + 0.1 < at < starting]
    assert len(outage) >= rate and {status for status, _ in outage} == {502}, outage
    latencies = sorted(seconds for _, seconds in outage)
    assert latencies[len(latencies) // 2] < 0.05 and latencies[-1] < D / 2, latencies
    assert {status for at, _, status in sent if at > back + interval} == {200}

    after = receiver_counts(lab)
    counted = {key: after[key] - before[key] for key in after}
    assert counted["200"] == counted["ok"] == target["answered"]["200"], counted
    assert counted["502"] == counted["error"] == target["answered"]["502"], counted
    # upstream's counts died with it (SIGKILL); the new process counted every call the receiver got an answer to
    since_back = value(metrics_in(lab, "upstream", 9001), "upstream_http_requests_total", route="/work",
                       caller="async", status="200")
    assert since_back == after["ok"] - down["ok"] > 0

    # The dashboard's errors panel shows the outage: its receiver series rises above 0.
    panel = next(p for p in board()["panels"] if p["title"] == "Errors: share of requests that failed")
    window = snapshot.Window(start=killing - 10, end=time.time(), scrape_interval=2.0, min_interval=2.0)
    shown = {series.name: [v for _, v in series.finite()]
             for series in snapshot.fetch(panel, snapshot.Prometheus(lab.prometheus), window).series}
    assert max(shown.get("receiver async 5xx", [0])) > 0, shown
    lab.compose("up", "-d", "--wait", "sender", RECEIVER_MODE="async", timeout=120)  # the lab's own sender again


def test_workers_in_containers_serve_side_by_side_and_count_right(lab):
    # RECEIVER_WORKERS=4 RECEIVER_MODE=sync docker compose up -d: gunicorn with four workers,
    # its metrics files on the container's tmpfs (the root filesystem stays read-only).
    lab.compose("up", "-d", "--wait", *SERVICES, RECEIVER_MODE="sync", RECEIVER_WORKERS="4", timeout=180)
    since = time.monotonic()
    info = json.loads(get(f"{lab.receiver}/info")[1])
    assert (info["mode"], info["server"], info["workers"]) == ("sync", "gunicorn", 4)
    makespans = [burst(lab)[1] for _ in range(3)]
    # One process would take N·D; four workers take less (their loops block side by side),
    # though rarely the even spread's D (README: "More processes").
    assert max(makespans) < N * D - 0.5 * D, makespans
    # Prometheus has scraped the receiver since the bursts: every worker's count of the three is in its sum.
    eventually(lambda: float(next(iter(sync_requests(lab)), 0.0)) >= 3 * N, 30, "the bursts' requests in Prometheus",
               interval=0.5)
    window = f"{int(time.monotonic() - since)}s"  # this receiver's life only: earlier ones had the same labels
    served = instant(lab.prometheus, 'receiver_info{server="gunicorn", workers="4", mode="sync"}')
    assert len(served) == 1
    concurrent = instant(lab.prometheus, 'max_over_time(upstream_http_requests_in_flight_peak{caller="sync"}[1m])')
    assert float(concurrent[0]["value"][1]) >= 2  # more than one blocking call at once: impossible with one loop
    resets = instant(lab.prometheus, f"sum(resets(receiver_http_requests_total[{window}]))")
    assert float(resets[0]["value"][1]) == 0
    # Every worker's count in the sum: this receiver's three bursts (and the lab's own sender's
    # one, should its 300 s interval come round meanwhile). A fresh receiver starts from 0.
    counted = sync_requests(lab)
    assert 3 * N <= counted[0] <= 4 * N, counted


def sync_requests(lab: Lab) -> list[float]:
    """Prometheus' sum of the sync receiver's answered GET /tasks (no value before its first scrape)."""
    found = instant(lab.prometheus, 'sum(receiver_http_requests_total{route="/tasks/{name}", mode="sync"})')
    return [float(sample["value"][1]) for sample in found]


def test_every_dashboard_query_has_data(lab):
    # Steady traffic for the rate() windows: the sender recreated with a short interval.
    lab.compose("up", "-d", "--wait", *SERVICES, RECEIVER_MODE="mixed", SENDER_INTERVAL="1", timeout=180)
    assert missing_data(lab.prometheus, timeout=90) == []
    up = {s["metric"]["job"]: s["value"][1] for s in instant(lab.prometheus, "up")}
    assert up == {"sender": "1", "receiver": "1", "upstream": "1"}


def test_containers_run_as_non_root(lab):
    for service in ("upstream", "receiver", "sender", "prometheus"):
        uid = lab.compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert uid not in ("", "0"), service
    # and as compose says: read-only, no capabilities, limited, logs rotated
    for service in ("upstream", "receiver", "sender", "prometheus"):
        cid = lab.ids()[service]
        host = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .HostConfig}}", cid],
                                         capture_output=True, text=True, check=True).stdout)
        assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"], service
        assert host["Memory"] > 0 and host["NanoCpus"] > 0, service
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "10m"}}, service


def test_compare_profile_shows_every_mode_side_by_side(lab):
    # The single receiver and its sender make way; the compare profile's five receivers and
    # its sender join the same upstream and Prometheus.
    lab.compose("rm", "-s", "-f", "receiver", "sender", timeout=120)
    lab.compose("--profile", "compare", "up", "-d", "--wait", *COMPARE, SENDER_INTERVAL="2", timeout=300)
    # The five receivers run the receiver image that the fixture built once: nothing was built again.
    images = {service: json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True,
                                                 check=True).stdout)[0]["Image"]
              for service, cid in lab.ids().items()}
    built = json.loads(subprocess.run(["docker", "image", "inspect", lab.images[1]], capture_output=True, text=True,
                                      check=True).stdout)[0]["Id"]
    assert {images[f"receiver-{mode}"] for mode in model.MODES} == {built}, images
    for mode in model.MODES:
        info = json.loads(get(f"http://127.0.0.1:{lab.env[f'HOST_RECEIVER_{mode.upper()}_PORT']}/info")[1])
        assert info["mode"] == mode
    # Prometheus finds the five receivers by their alias, and every query split by mode has
    # data for each of them.
    assert missing_modes(lab.prometheus, model.MODES, timeout=120) == {}
    receivers = instant(lab.prometheus, 'up{job="receiver"}')
    assert len(receivers) == len(model.MODES) and all(s["value"][1] == "1" for s in receivers)
    assert missing_data(lab.prometheus, timeout=30) == []
    # one schedule: every mode got the same number of bursts (give or take the one in progress)
    bursts = {s["metric"]["mode"]: float(s["value"][1])
              for s in instant(lab.prometheus, "sum by (mode) (sender_bursts_total)")}
    assert set(bursts) == set(model.MODES) and max(bursts.values()) - min(bursts.values()) <= 1, bursts


def test_every_service_stops_with_exit_0(lab):
    # docker stop: SIGTERM, the grace period, then SIGKILL (137). Each of the lab's services
    # drains and exits 0 on the SIGTERM (the receiver was 143 before: uvicorn re-raised it).
    lab.compose("--profile", "compare", "stop", timeout=300)
    out = lab.compose("--profile", "compare", "ps", "-a", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):
        rows = rows[0]
    codes = {row["Service"]: row["ExitCode"] for row in rows}
    assert set(codes) >= {"upstream", "prometheus", *COMPARE}, codes
    assert all(code == 0 for code in codes.values()), codes


def test_down_leaves_nothing_behind(lab):  # last: it takes the lab down
    lab.compose("down", "-v", "--remove-orphans", timeout=120)
    assert lab.leftovers() == [], "docker compose down -v left these behind"
